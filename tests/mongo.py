"""The MongoDB server of the tests: ``FLOPS_TEST_MONGO_URL``, or an nx-27017 they start.

nx-27017 (PyPI, MIT) is a MongoDB-wire server on SQLite that ``AsyncMongoClient`` works
with. That leg never skips: a server that cannot start fails the tests with its output.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from pymongo import MongoClient

from broker.server import free_port

MONGO_URL_ENV = "FLOPS_TEST_MONGO_URL"
NX_START = "from nx_27017.nx_27017 import main; main()"


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_listening(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Block until nx-27017 logs that it listens; fail with its output if it never does."""
    assert proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stderr, lines), daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while (line := lines.get(timeout=max(deadline - time.monotonic(), 0.01))) is not None:
            seen.append(line)
            if "Listening on" in line:
                return
    except queue.Empty:
        pass
    proc.kill()
    pytest.fail(
        f"nx-27017 did not start (exit code {proc.wait()}); install the dev extra"
        f" (pip install -e '.[dev]') or set {MONGO_URL_ENV}. Its output:\n{''.join(seen)}"
    )


def _start_nx(state: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    args = ["--data-dir", str(state / "data"), "--host", "127.0.0.1", "-p", str(port)]
    args += ["--pid-file", str(state / "nx.pid"), "--log-file", str(state / "nx.log")]
    proc = subprocess.Popen(
        [sys.executable, "-c", NX_START, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_listening(proc)
    return proc, f"mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=5000"


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The MongoDB server of this test run: ``FLOPS_TEST_MONGO_URL``, or an nx-27017 we run."""
    if url := os.environ.get(MONGO_URL_ENV):
        yield url
        return
    proc, url = _start_nx(tmp_path_factory.mktemp("nx-27017"))
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(url)
        with client:
            client.admin.command("ping")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

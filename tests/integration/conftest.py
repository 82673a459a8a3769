"""A running stack (real processes) against the tests' mosquitto, and its users' SLAs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from slas import bundled_dir
from tests.conftest import BrokerProcess, cli_env, make_repo, run_cli


def write_local_sla(
    folder: Path, repo: Path, name: str = "mnist_sklearn_small.json", **changes: object
) -> Path:
    """The bundled SLA of ``name``, pointing at a local repository instead of GitHub."""
    sla = json.loads((bundled_dir() / name).read_text())
    sla.update(ml_repo_url=f"file://{repo}", **changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(sla, indent=4))
    return path


STARTED: list[subprocess.Popen[bytes]] = []  # the stack processes of per-test stacks
# These stacks take bursts of hundreds of starts by one user: no per-user quota
# (tests/integration/test_quotas.py tests the quotas).
UNLIMITED = {"FLOPS_MAX_LIVE_PROJECTS": "0", "FLOPS_MAX_STARTS_PER_MINUTE": "0"}


@pytest.fixture(autouse=True)
def no_stack_outlives_its_test() -> Iterator[None]:
    """Kill the stack processes a (failed) test started and left running."""
    before = len(STARTED)
    yield
    while len(STARTED) > before:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@dataclass
class Stack:
    """A ``flops up`` process and the environment its CLI users share."""

    root: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    per_test: bool = False  # killed after its test, should the test fail before stopping it

    @property
    def data_dir(self) -> Path:
        return Path(self.env["XDG_DATA_HOME"]) / "flops"

    def start(self, *args: str) -> None:
        log = (self.root / "stack.out").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", *args], env=self.env, stdout=log, stderr=log
        )
        if self.per_test:
            STARTED.append(self.proc)
        deadline = time.monotonic() + 20
        card = self.data_dir / "stack.json"
        while time.monotonic() < deadline:
            if card.exists() and json.loads(card.read_text())["pid"] == self.proc.pid:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("stack did not start:\n" + (self.root / "stack.out").read_text())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.proc.wait(30)

    def cli(
        self, *args: str, prog: str = "flops", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), self.env, prog=prog, timeout=timeout)

    def cli_json(self, *args: str) -> dict[str, object]:
        done = self.cli(*args, "--output", "json")
        assert done.returncode == 0, done.stderr
        result: dict[str, object] = json.loads(done.stdout)
        return result


@pytest.fixture(scope="module")
def stack(mosquitto: BrokerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    repo = make_repo(root / "repos")
    sla_dir = root / "slas"
    write_local_sla(sla_dir, repo)
    env = cli_env(root, FLOPS_SLA_DIR=str(sla_dir), **UNLIMITED)
    s = Stack(root, env)
    s.start(
        "--broker", "external", "--broker-host", "127.0.0.1", "--broker-port", str(mosquitto.port)
    )
    s.repo = repo  # type: ignore[attr-defined]
    yield s
    code = s.stop()
    assert code == 0, (root / "stack.out").read_text()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    b = BrokerProcess(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def make_stack(tmp_path: Path, broker: BrokerProcess, **env: str) -> Stack:
    repo = make_repo(tmp_path / "repos")
    write_local_sla(tmp_path / "slas", repo)
    env = {**UNLIMITED, **env}
    stack = Stack(
        tmp_path, cli_env(tmp_path, FLOPS_SLA_DIR=str(tmp_path / "slas"), **env), per_test=True
    )
    stack.repo = repo  # type: ignore[attr-defined]
    return stack


def start(stack: Stack, broker: BrokerProcess) -> None:
    stack.start(
        "--broker", "external", "--broker-host", "127.0.0.1", "--broker-port", str(broker.port)
    )

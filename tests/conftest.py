"""Shared fixtures: a real mosquitto on a free port, git repositories on disk, CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.harness import make_repo as bench_repo
from broker.process import MosquittoProcess
from broker.server import find_mosquitto
from tests.mongo import mongo_url

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["mongo_url"]  # a session fixture, shared by the store and stack tests


def mosquitto_binary() -> str:
    found = find_mosquitto()
    if found is None:
        pytest.fail("mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)")
    return found


# A mosquitto process the tests started, restartable on the same port.
BrokerProcess = MosquittoProcess


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


def make_repo(
    parent: Path,
    user: str = "Malyuk-A",
    name: str = "flops_ml_repo_mnist_sklearn",
    files: dict[str, str] | None = None,
) -> Path:
    """A local git repository with one commit, laid out like github.com/<user>/<repo>.

    Its files are ``files``, by default the smallest repository that passes the contract
    (``bench.harness.MINIMAL_REPO``: numpy only, so a project's build is quick).
    """
    return bench_repo(parent, name, user, files)


def head_of(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repos")


def cli_env(data_dir_parent: Path, **extra: str) -> dict[str, str]:
    """Environment of a CLI or stack subprocess isolated under ``data_dir_parent``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    env.update(
        XDG_DATA_HOME=str(data_dir_parent / "data"),
        XDG_CONFIG_HOME=str(data_dir_parent / "config"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        # Stacks of tests about other things rest their projects after the build (their
        # repositories' data is not on the node); the training tests set "all".
        FLOPS_STAGES="build",
    )
    env.update(extra)
    return env


def run_cli(
    args: list[str],
    env: dict[str, str],
    *,
    prog: str = "flops",
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``flops`` or ``oak`` as a subprocess, the way a user does (``stdin``: one line)."""
    code = f"from cli.main import {prog}_entry; {prog}_entry()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=None if stdin is None else stdin + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(condition: Callable[[], Any], timeout: float = 30) -> Any:
    """``condition()``'s first true value, checked every 0.1 s for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")

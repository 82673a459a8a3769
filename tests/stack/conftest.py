"""A stack in this test's process against the test's mosquitto, with the CLI's environment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slas import bundled_dir
from stack.app import run_stack
from stack.settings import StackSettings
from tests.conftest import BrokerProcess, cli_env, make_repo
from tests.integration.conftest import write_local_sla


@dataclass
class InProcess:
    """The running stack's settings and the environment of a CLI that talks to it."""

    settings: StackSettings
    env: dict[str, str]


@asynccontextmanager
async def stack_in_process(
    tmp_path: Path,
    mosquitto: BrokerProcess,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, Any],
    **run: Any,
) -> AsyncIterator[InProcess]:
    """Run the stack (an empty config file, a local SLA) until the block ends."""
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("FLOPS_CONFIG", str(config))
    made = StackSettings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "broker": "external",
            "broker_port": mosquitto.port,
            "identifier": f"in-{tmp_path.name}"[:60],
            "stages": "build",  # as tests.conftest.cli_env: these tests are not about training
            **settings,
        }
    )
    write_local_sla(tmp_path / "slas", make_repo(tmp_path / "repos"))
    env = cli_env(
        tmp_path,
        FLOPS_SLA_DIR=str(tmp_path / "slas"),
        FLOPS_BROKER_HOST="127.0.0.1",
        FLOPS_BROKER_PORT=str(mosquitto.port),
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_stack(made, stop, lambda _card: ready.set(), **run))
    async with asyncio.timeout(20):
        await ready.wait()
    try:
        yield InProcess(made, env)
    finally:
        stop.set()
        await task


SEED_URL = "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn"
# Stack settings for the seed SLA with every stage, on the bundled example (no GitHub).
SEED_STACK: dict[str, Any] = {
    "stages": "all",
    "repo_sources": {SEED_URL: "bundled:flops_ml_repo_mnist_sklearn"},
}


def seed_slas(folder: Path) -> Path:
    """A folder with the seed SLA as ``seed.json`` (with its post-training steps)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seed.json").write_text((bundled_dir() / "mnist_sklearn_small.json").read_text())
    return folder


@asynccontextmanager
async def seed_stack(
    tmp_path: Path,
    phase: str,
    mosquitto: BrokerProcess,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, Any],
) -> AsyncIterator[dict[str, str]]:
    """A stack for the seed SLA on ``tmp_path/data`` (each ``phase`` a start of its own):
    the environment of a CLI that talks to it."""
    folder, data_dir = tmp_path / phase, tmp_path / "data"
    folder.mkdir()
    fixed = {**SEED_STACK, "data_dir": data_dir, **settings}
    async with stack_in_process(folder, mosquitto, monkeypatch, fixed) as run:
        slas = seed_slas(tmp_path / "seed-slas")
        yield {**run.env, "FLOPS_DATA_DIR": str(data_dir), "FLOPS_SLA_DIR": str(slas)}

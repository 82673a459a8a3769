"""Our side of MLflow tracking: ``flops_env.tracking`` run with the aggregator's Python.

Off by default (setting ``mlflow_tracking``). When on, the aggregator opens a ``Tracker``
for its project and logs each round and the saved model; the store is SQLite under the
data dir unless ``mlflow_tracking_uri`` names another. MLflow never enters our venv: it
runs in the aggregator's environment, with telemetry off. A tracking failure is a
``TrackingError``: the caller reports it as a WARNING and trains on.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.errors import FlopsError

EXPERIMENT = "FLOps Project {project_id}"
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "GIT_PYTHON_REFRESH": "quiet"}


class TrackingError(FlopsError):
    """MLflow tracking could not start or could not log; the message says what."""


class TrackingSettings(BaseModel):
    """The tracking settings of the stack (``mlflow_tracking``, ``mlflow_tracking_uri``)."""

    model_config = ConfigDict(extra="forbid")
    mlflow_tracking: bool = False
    mlflow_tracking_uri: str = ""  # empty: sqlite:///<data_dir>/mlflow/mlflow.db
    mlflow_start_timeout: float = 120.0  # a new SQLite store creates its tables (~8 s)


def store_dir(data_dir: Path) -> Path:
    """Where the default store, its artifacts and the tracker's log live."""
    return data_dir / "mlflow"


def default_uri(data_dir: Path) -> str:
    """The SQLite store under the data dir."""
    return f"sqlite:///{store_dir(data_dir) / 'mlflow.db'}"


class Tracker:
    """A running ``flops_env.tracking``: one request, one answer, in order."""

    def __init__(self, proc: asyncio.subprocess.Process, timeout: float) -> None:
        self._proc = proc
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self.experiment_id = ""

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None  # noqa: S101 - started with a pipe
        try:
            async with asyncio.timeout(timeout):
                line = await self._proc.stdout.readline()
        except TimeoutError:
            raise TrackingError(f"MLflow tracking did not answer within {timeout:g} s") from None
        if not line:
            raise TrackingError(f"MLflow tracking ended (exit code {await self._proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise TrackingError(str(answer.get("error", "MLflow tracking failed")))
        return answer

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None  # noqa: S101 - started with a pipe
        async with self._lock:
            try:
                self._proc.stdin.write(json.dumps(request).encode() + b"\n")
                await self._proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                raise TrackingError("MLflow tracking is not running") from None
            return await self._read(self._timeout)

    async def started(self, timeout: float) -> None:
        """Wait for the ready line; MLflow's store and experiment exist then."""
        self.experiment_id = str((await self._read(timeout))["experiment_id"])

    async def log_round(self, number: int, metrics: dict[str, float]) -> str:
        """A run ``FLOps FL round <n>`` with the round's metrics; its run id."""
        return str(
            (await self._ask({"op": "round", "round": number, "metrics": metrics}))["run_id"]
        )

    async def log_model(self, number: int, artifact_dir: Path) -> str:
        """The artifact's files in the run of its round; that run's id."""
        answer = await self._ask({"op": "model", "round": number, "path": str(artifact_dir)})
        return str(answer["run_id"])

    async def close(self) -> None:
        """End the process: stdin closed, then SIGKILL if it lingers."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await self._proc.wait()
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


@asynccontextmanager
async def open_tracker(
    python: Path, project_id: str, data_dir: Path, settings: TrackingSettings
) -> AsyncIterator[Tracker]:
    """Start tracking for one project with the aggregator environment's ``python``."""
    folder = store_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    uri = settings.mlflow_tracking_uri or default_uri(data_dir)
    command = [
        str(python), "-m", "flops_env.tracking", "--tracking-uri", uri,
        "--experiment", EXPERIMENT.format(project_id=project_id),
        "--artifact-root", (folder / "artifacts").as_uri(),
    ]  # fmt: skip
    with (folder / "tracking.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=folder, env={**os.environ, **QUIET},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    tracker = Tracker(proc, timeout=60.0)
    try:
        await tracker.started(settings.mlflow_start_timeout)
        yield tracker
    finally:
        await tracker.close()

"""The parent side of the user-code worker (``flops_env.worker``): an asyncio subprocess.

``async with Worker.start(spec, settings) as worker`` starts ``python -m flops_env.worker``
with the environment's Python, waits for its ``ready`` frame and stops it on exit. Each call
sends one request frame and reads one answer; a worker that exits is reported with its exit
code and the tail of its stderr, one that does not answer in time is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from flops_env import frames
from services.training.errors import ModelTooLargeError, UserCodeError, Where, WorkerError
from services.training.fedavg import Arrays, Evaluation
from services.training.settings import TrainingSettings

log = logging.getLogger(__name__)
TAIL = 40  # stderr lines kept for a crash report
WRITE_NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"
THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
USER_OPS = {
    "ready": "importing model_manager / ModelManager()",
    "get_parameters": "get_model_parameters",
    "set_parameters": "set_model_parameters",
    "set_model_data": "set_model_data",
    "fit": "fit_model",
    "evaluate": "evaluate_model",
    "prepare": "importing the model flavor's libraries",
    "save_model": "save_model",
}


class WorkerSpec(BaseModel):
    """Which Python runs the worker, on which repository, with which extra environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    python: str
    repo: Path
    env: dict[str, str] = {}
    threads: int = 1  # OMP/OpenBLAS/MKL threads of the user's code


@dataclass(frozen=True, slots=True)
class Ready:
    """What the worker reported at start."""

    python: str
    numpy: str
    import_seconds: float
    init_seconds: float
    start_seconds: float  # from spawning to ready, as the parent saw it


def worker_env(spec: WorkerSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: ours less FLOPS_* settings, thread caps, then ``spec.env``.

    Without ``PYTHONDONTWRITEBYTECODE`` (which the stack's own image sets for its packages,
    installed compiled): images are installed by uv without bytecode, so a worker that may
    not write it compiles numpy, scipy and scikit-learn from source at every start (about
    1 s of CPU more per worker here). The first worker of an image writes it into the
    image's ``__pycache__`` folders, as any venv's first import does, atomically.
    """
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith("FLOPS_")}
    env.pop(WRITE_NO_BYTECODE, None)
    env.update({name: str(spec.threads) for name in THREADS})
    env["PYTHONUNBUFFERED"] = "1"
    env.update(spec.env)
    return env


@dataclass
class Worker:
    """A running worker process and the operations of the ModelManager contract."""

    proc: asyncio.subprocess.Process
    settings: TrainingSettings
    ready: Ready | None = None
    _tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pump: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, spec: WorkerSpec, settings: TrainingSettings) -> AsyncIterator[Worker]:
        """Start a worker, wait for it to be ready, stop it when the block ends."""
        started = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                spec.python,
                "-m",
                "flops_env.worker",
                "--repo",
                str(spec.repo),
                "--max-model-bytes",
                str(settings.max_model_bytes),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=worker_env(spec),
                cwd=spec.repo,
                limit=1 << 20,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start the worker with {spec.python}: {exc}") from exc
        worker = cls(proc, settings)
        # Owned here and awaited below (a TaskGroup would wrap the caller's errors in a group).
        pump = worker._pump = asyncio.create_task(worker._pump_stderr())
        try:
            head, _ = await worker._answer("ready", settings.worker_start_timeout)
            worker.ready = Ready(
                str(head.get("python", "")),
                str(head.get("numpy", "")),
                float(head.get("import_seconds", 0.0)),
                float(head.get("init_seconds", 0.0)),
                time.perf_counter() - started,
            )
            yield worker
        finally:
            await worker._stop()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    async def get_parameters(self) -> Arrays:
        """``get_model_parameters()``: refused up front when over ``max_model_bytes``."""
        return (await self.call("get_parameters"))[1]

    async def set_parameters(self, parameters: Arrays) -> None:
        """``set_model_parameters(parameters)``."""
        await self.call("set_parameters", arrays=parameters)

    async def set_model_data(self) -> float:
        """``set_model_data()``; the seconds it took."""
        return float((await self.call("set_model_data"))[0]["seconds"])

    async def fit(self, parameters: Arrays) -> tuple[Arrays, int]:
        """Set the parameters, ``fit_model()``; the new parameters and the example count."""
        head, arrays = await self.call("fit", arrays=parameters)
        return arrays, int(head["examples"])

    async def evaluate(self, parameters: Arrays) -> Evaluation:
        """Set the parameters, ``evaluate_model()``."""
        head, _ = await self.call("evaluate", arrays=parameters)
        return Evaluation(float(head["loss"]), float(head["accuracy"]), int(head["examples"]))

    async def prepare(self, flavor: str) -> None:
        """Import what saving a model of ``flavor`` needs (``flops_env.flavors.prepare``)."""
        await self.call("prepare", {"flavor": flavor})

    async def save_model(self, path: Path, flavor: str, parameters: Arrays) -> dict[str, Any]:
        """Set the parameters, save ``get_model()`` in its flavor's format into ``path``.

        The answer is ``flavor.json``'s content (``flops_env.flavors.save_model``).
        """
        head, _ = await self.call(
            "save_model", {"path": str(path), "flavor": flavor}, arrays=parameters
        )
        return {k: v for k, v in head.items() if k not in ("ok", "op")}

    async def call(
        self, op: str, header: dict[str, Any] | None = None, arrays: Arrays | None = None
    ) -> tuple[dict[str, Any], Arrays]:
        """Send one request and return the answer's header and arrays."""
        async with self._lock:
            pieces = frames.encode({**(header or {}), "op": op}, arrays or [])
            stdin = self.proc.stdin
            if stdin is None or stdin.is_closing():  # it died since the last call: say how
                raise await self._died(op)
            try:
                stdin.writelines(pieces)
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                raise await self._died(op) from None
            return await self._answer(op, self.settings.worker_call_timeout)

    async def _answer(self, op: str, timeout: float) -> tuple[dict[str, Any], Arrays]:
        stdout = self.proc.stdout
        if stdout is None:
            raise self._crashed(op)
        limit = self.settings.frame_limit
        try:
            async with asyncio.timeout(timeout):
                prefix = await stdout.readexactly(frames.PREFIX.size)
                head, body = frames.parse_prefix(prefix, limit)
                frame = frames.decode_parts(
                    await stdout.readexactly(head), await stdout.readexactly(body)
                )
        except TimeoutError:
            self._kill()
            raise WorkerError(
                f"the worker did not answer {op!r} within {timeout:g} s and was stopped"
            ) from None
        except asyncio.IncompleteReadError:
            raise await self._died(op) from None
        except frames.FrameError as exc:
            self._kill()
            raise WorkerError(f"the worker sent a bad frame for {op!r}: {exc}") from exc
        if not frame.header.get("ok"):
            raise _error(op, frame.header.get("error") or {})
        return frame.header, frame.arrays

    async def _exit_code(self) -> int | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                return await self.proc.wait()
        return None

    async def _died(self, op: str) -> WorkerError:
        """The error of a worker that went away, once its last stderr lines are read."""
        code = await self._exit_code()
        if self._pump is not None:
            await asyncio.wait({self._pump}, timeout=1.0)
        return self._crashed(op, code)

    def _crashed(self, op: str, code: int | None = None) -> WorkerError:
        tail = " | ".join(line for line in list(self._tail)[-8:] if line.strip())
        how = f"exited with code {code}" if code is not None else "closed its pipes"
        return WorkerError(
            f"the worker {how} during {USER_OPS.get(op, op)}"
            + (f"; its last output: {tail}" if tail else "")
        )

    async def _pump_stderr(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self._tail.append(text)
            log.debug("worker %d: %s", self.proc.pid, text)

    def _kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def _stop(self) -> None:
        """Ask the worker to stop, then kill it if it does not within a few seconds."""
        if self.proc.returncode is None and self.proc.stdin and not self.proc.stdin.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.writelines(frames.encode({"op": "shutdown"}))
                self.proc.stdin.close()
        if await self._exit_code() is None:
            self._kill()
            await self.proc.wait()


def _error(op: str, error: dict[str, Any]) -> Exception:
    where = Where(
        str(error.get("type", "Error")),
        str(error.get("message", "")),
        error.get("file"),
        error.get("line"),
    )
    if where.type == "FrameTooLargeError":
        return ModelTooLargeError(where.message)
    log.debug("worker error in %s: %s", op, error.get("traceback", ""))
    return UserCodeError(USER_OPS.get(op, op), where)


def ensure_arrays(values: list[Any]) -> Arrays:
    """Parameters as a list of numpy arrays (for callers that got them elsewhere)."""
    return [np.asarray(v) for v in values]

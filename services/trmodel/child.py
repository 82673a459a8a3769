"""One life of the scoring server as a child process: start, until it answers, watch, stop.

The child is ``python -m flops_env.serve`` started with the trained-model image's Python.
Its stdout and stderr are read all along (so it never blocks on a full pipe): the ready
line tells its URL, every other line goes to a short tail that failures quote.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flops_env.serve import READY
from services.training.worker import WRITE_NO_BYTECODE

OnReady = Callable[[str, int], Awaitable[None]]  # (url, pid)


@dataclass(frozen=True)
class Ended:
    """How a life of the child ended."""

    reason: str  # "exited with code 3 before answering", "stopped answering /ping", ...
    code: int | None  # its exit code, if it exited by itself
    answered: bool  # it had answered /ping
    tail: list[str]  # its last lines of output


@dataclass(frozen=True)
class Timing:
    """The bounds of one life: start, health checks, stop."""

    ready_timeout: float
    health_interval: float
    health_misses: int
    stop_timeout: float


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process, tail_lines: int = 40) -> None:
        self.proc = proc
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def pump(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith(READY + " ") and not self.ready.done():
                self.ready.set_result(line.split(" ", 1)[1])
            elif line:
                self.tail.append(line)

    async def stop(self, timeout: float) -> None:
        if self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            async with asyncio.timeout(timeout):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def ping(client: httpx.AsyncClient, url: str) -> bool:
    """Whether ``url/ping`` answers 200."""
    try:
        response = await client.get(f"{url}/ping")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def _until_ready(child: _Child, client: httpx.AsyncClient, timeout: float) -> str | Ended:
    exited = asyncio.ensure_future(child.proc.wait())
    waiting: set[asyncio.Future[Any]] = {child.ready, exited}
    try:
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if child.ready.done() and await ping(client, child.ready.result()):
        return child.ready.result()
    code = child.proc.returncode
    if code is not None:
        return Ended(f"exited with code {code} before answering", code, False, [])
    reason = "did not answer /ping" if done else f"did not answer within {timeout:g} s"
    return Ended(reason, None, False, [])


async def _watch(child: _Child, client: httpx.AsyncClient, url: str, timing: Timing) -> Ended:
    exited = asyncio.ensure_future(child.proc.wait())
    missed = 0
    try:
        while missed < timing.health_misses:
            done, _ = await asyncio.wait({exited}, timeout=timing.health_interval)
            if done:
                code = exited.result()
                return Ended(f"exited with code {code}", code, True, [])
            missed = 0 if await ping(client, url) else missed + 1
    finally:
        exited.cancel()
    return Ended(f"stopped answering /ping ({missed} checks)", None, True, [])


async def run_child(
    command: list[str],
    cwd: Path,
    env: Mapping[str, str],
    client: httpx.AsyncClient,
    timing: Timing,
    on_ready: OnReady,
) -> Ended:
    """Run one life of the child; it is stopped (SIGTERM, then SIGKILL) however this ends."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal reaches the stack, which stops it
        )
    except OSError as exc:
        return Ended(f"cannot start {command[0]}: {exc.strerror or exc}", None, False, [])
    child = _Child(proc)
    pumps = [asyncio.ensure_future(child.pump(s)) for s in (proc.stdout, proc.stderr)]
    try:
        outcome = await _until_ready(child, client, timing.ready_timeout)
        if isinstance(outcome, str):
            await on_ready(outcome, proc.pid)
            outcome = await _watch(child, client, outcome, timing)
    finally:
        await child.stop(timing.stop_timeout)
        await asyncio.wait(pumps, timeout=1.0)  # the last lines, up to the end of output
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    return Ended(outcome.reason, outcome.code, outcome.answered, list(child.tail))


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours, unbuffered, one BLAS thread (small models, few cores).

    Without ``PYTHONDONTWRITEBYTECODE``, as the training workers (``worker.WRITE_NO_BYTECODE``):
    uv installs images without bytecode, and a server that may not write it compiles
    scikit-learn at every start (about 3 s more here).
    """
    env = dict(os.environ if base is None else base)
    env.pop(WRITE_NO_BYTECODE, None)
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    return env

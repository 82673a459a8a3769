"""The lifetime of the embedded mosquitto process: waiting for its end, ending a leftover.

A stack killed with ``kill -9`` leaves its mosquitto running on its data dir; the next start
ends it first (by the pid file and its command line), so the port and the persistence file
are free again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from core.aio import race

log = logging.getLogger(__name__)


async def ended_before(proc: asyncio.subprocess.Process, stop: asyncio.Event) -> bool:
    """Wait until ``proc`` exits (False) or ``stop`` is set (True)."""
    await race(proc.wait(), stop.wait())
    return stop.is_set()


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``stop`` is set first; whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


def pid_file(state_dir: Path) -> Path:
    """Where the stack notes the pid of the mosquitto it runs on ``state_dir``."""
    return state_dir / "mosquitto.pid"


async def end_leftover(state_dir: Path, timeout: float = 10.0) -> None:
    """End a mosquitto still running on ``state_dir``'s config: its stack was killed.

    The caller owns the state dir (no live stack has it), so the process named in the pid
    file is ours only if its command line names our config; anything else is left alone.
    """
    try:
        pid = int(pid_file(state_dir).read_text())
    except (OSError, ValueError):
        return
    conf = str(state_dir / "mosquitto.conf").encode()
    if conf not in _cmdline(pid):
        return
    log.warning("ending mosquitto (pid %d), left running by a stack that was killed", pid)
    deadline = time.monotonic() + timeout
    while conf in _cmdline(pid):  # a zombie or another process has another command line
        # SIGTERM: it saves its persistence file; SIGKILL if it will not go.
        sig = signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        await asyncio.sleep(0.05)


def _cmdline(pid: int) -> list[bytes]:
    """The arguments of ``pid``; none for a zombie or a process that is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []

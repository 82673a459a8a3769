"""File locks for builds that share a data dir: across coroutines, processes and stacks.

``flock`` on a file per key; a waiter polls without blocking the event loop (no threads).
The kernel drops a lock when its holder dies, so a killed build never blocks the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

POLL = 0.05  # seconds between attempts of a waiting builder


def lock_path(folder: Path, key: str) -> Path:
    """The lock file of ``key`` (any string) in ``folder``."""
    return folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def try_lock(path: Path) -> int | None:
    """The descriptor holding ``path`` locked, or None when someone else holds it."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def unlock(fd: int) -> None:
    """Release a lock taken by ``try_lock``."""
    os.close(fd)


@contextlib.asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    """Hold the lock of ``path`` for the block, waiting for it without blocking the loop."""
    fd = try_lock(path)
    while fd is None:
        await asyncio.sleep(POLL)
        fd = try_lock(path)
    try:
        yield
    finally:
        unlock(fd)

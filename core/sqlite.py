"""SQLite for the embedded default, called directly on the event loop.

SQLite statements on a local WAL database take microseconds (``synchronous=NORMAL``: a
commit writes the WAL without an fsync), less than the thread hop that aiosqlite pays on
every call, so ``Database`` runs them inline and keeps an awaitable surface for the stores
(which share an async interface with MongoDB). Measured: a project start's store work went
from ~5 ms through aiosqlite to well under 1 ms (docs/performance.md). WAL with
``synchronous=NORMAL`` survives a crash of the process (``kill -9``); only a power loss may
take the last transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

from core.errors import StoreError

log = logging.getLogger(__name__)
IDLE = 0.25  # seconds without a statement before a checkpoint
WAL_LIMIT_PAGES = 16384  # SQLite checkpoints by itself past this (64 MiB of 4 KiB pages)


class Result:
    """The cursor of one executed statement: awaitable, and an async context manager."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, Result]:
        return self
        yield  # pragma: no cover - makes this a generator; nothing is awaited

    async def __aenter__(self) -> Result:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    async def fetchall(self) -> list[sqlite3.Row]:
        """Every remaining row."""
        return self._cursor.fetchall()

    async def fetchone(self) -> sqlite3.Row | None:
        """The next row, if any."""
        row: sqlite3.Row | None = self._cursor.fetchone()
        return row


class Database:
    """One SQLite connection, used only from the event loop's thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._last_used = 0.0
        self._unsaved = False  # statements ran since the last checkpoint

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Result:
        """Run one statement now."""
        self._last_used = time.monotonic()
        self._unsaved = True
        return Result(self._connection.execute(sql, tuple(args)))

    async def executemany(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Run one statement for every row."""
        self._last_used = time.monotonic()
        self._unsaved = True
        self._connection.executemany(sql, rows)

    async def checkpoint_when_idle(
        self, stop: asyncio.Event, idle: float = IDLE, every: float = 1.0
    ) -> None:
        """Until ``stop``: copy the WAL into the database once nothing ran for ``idle`` s.

        A checkpoint fsyncs and blocks the event loop for 5-20 ms here; SQLite's own
        automatic one runs inside whichever COMMIT crosses its page limit, in the middle of
        a request (docs/performance.md: most of the start latency's p99). So checkpoints
        happen in quiet moments, and the automatic one only past ``WAL_LIMIT_PAGES``, as a
        backstop under load that never pauses.
        """
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await stop.wait()
            if self._unsaved and time.monotonic() - self._last_used >= idle:
                try:
                    self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
                except sqlite3.Error as exc:  # busy or failing: the backstop still holds
                    log.warning("WAL checkpoint failed: %s", exc)
                else:
                    self._unsaved = False

    async def executescript(self, script: str) -> None:
        """Run several statements."""
        self._connection.executescript(script)

    async def close(self) -> None:
        """Close the connection."""
        self._connection.close()


async def open_db(path: Path, schema: str, what: str) -> Database:
    """Open ``path`` in WAL mode (autocommit; explicit transactions) and apply ``schema``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        connection.row_factory = sqlite3.Row
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=5000",
            f"wal_autocheckpoint={WAL_LIMIT_PAGES}",
        ):
            connection.execute(f"PRAGMA {pragma}")
        connection.executescript(schema)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the {what} database {path}: {exc}") from exc
    return Database(connection)

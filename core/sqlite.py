"""Opening the SQLite databases of the embedded default, the same way everywhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from core.errors import StoreError


async def open_db(path: Path, schema: str, what: str) -> aiosqlite.Connection:
    """Open ``path`` in WAL mode (autocommit; explicit transactions) and apply ``schema``.

    ``synchronous=NORMAL`` in WAL mode survives a crash of the process (``kill -9``); only a
    power loss may take the last transactions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = sqlite3.Row
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=5000",
        ):
            await db.execute(f"PRAGMA {pragma}")
        await db.executescript(schema)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the {what} database {path}: {exc}") from exc
    return db

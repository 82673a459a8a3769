import asyncio
from pathlib import Path

from core.sqlite import WAL_LIMIT_PAGES, open_db


async def test_the_wal_is_checkpointed_once_the_database_is_idle(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = await open_db(path, "CREATE TABLE IF NOT EXISTS t (x TEXT);", "test")
    async with db.execute("PRAGMA wal_autocheckpoint") as cur:
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == WAL_LIMIT_PAGES  # SQLite's own checkpoint is only a backstop
    await db.execute("BEGIN")
    await db.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,) for _ in range(500)])
    await db.execute("COMMIT")
    before = path.stat().st_size  # the rows are in the WAL only
    stop = asyncio.Event()
    upkeep = asyncio.create_task(db.checkpoint_when_idle(stop, idle=0.05, every=0.05))
    async with asyncio.timeout(10):
        while path.stat().st_size < before + 400_000:  # noqa: ASYNC110 - a file's size
            await asyncio.sleep(0.05)
    stop.set()
    await upkeep
    await db.close()

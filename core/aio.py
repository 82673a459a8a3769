"""Small asyncio helpers shared by the packages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def race(*awaitables: Awaitable[Any]) -> list[asyncio.Future[Any]]:
    """Run ``awaitables`` until the first one ends, cancel the others, and wait for them.

    Returns their futures in order: each is done, with a result or an exception, or
    cancelled (test ``cancelled()`` before reading it).
    """
    futures: list[asyncio.Future[Any]] = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
    return futures


def seen(future: asyncio.Future[Any]) -> None:
    """Mark a done future's exception as retrieved (a done callback).

    For futures whose failure is reported another way, or by whoever awaits them if anyone
    still does: asyncio then logs no "exception was never retrieved".
    """
    if not future.cancelled():
        future.exception()


def others_ready() -> bool:
    """Whether other callbacks or tasks wait to run in this turn of the event loop.

    asyncio has no public way to ask; its loop keeps them in ``_ready``. Without it
    (another loop implementation) the answer is ``False``: callers then act at once.
    """
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    return bool(ready)

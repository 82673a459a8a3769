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

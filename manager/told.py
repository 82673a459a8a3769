"""The manager's own events of one step, queued for the log as they happen, stored together.

Entering a stage tells its project's log several things: lines before a service, each
service's announcement, the state the stage enters. Each is queued the moment it happens,
so it goes into the log ahead of anything the service deployed just before logs itself,
and the step waits once, for all of them, before it records the stage as deployed: the
log's writer stores them in one transaction (one commit, its live entries sent in one turn)
instead of one each, and a crash before that record enters the stage again, its entries
kept once (the log skips event ids it has).

Where the project's log is not in this process (``Deps.queue`` gives no future), each event
is emitted and awaited in turn, as before.
"""

from __future__ import annotations

import asyncio

from core.aio import seen
from core.errors import StoreError
from manager.deps import Deps
from protocol.events import Event


class Told:
    """The events one step of ``user``'s project told its log; see the module docstring."""

    def __init__(self, deps: Deps, user: str) -> None:
        self._deps = deps
        self._user = user
        self._waiting: list[asyncio.Future[None]] = []

    async def tell(self, event: Event) -> None:
        """Queue ``event`` for the log now; without a log here, emit it and wait."""
        stored = self._deps.queue(self._user, event)
        if stored is None:
            await self._deps.emit(self._user, event)
        else:
            # Retrieved even if the step ends before ``stored`` (an unexpected error): a
            # failed write is then the step's to report, not asyncio's.
            stored.add_done_callback(seen)
            self._waiting.append(stored)

    async def stored(self) -> None:
        """Wait until every event told so far is stored; ``StoreError`` if one was not."""
        waiting, self._waiting = self._waiting, []
        failed: StoreError | None = None
        for stored in waiting:  # in order; every failure is retrieved, the first raised
            try:
                await stored
            except StoreError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

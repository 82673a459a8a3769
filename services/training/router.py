"""One read loop per actor: each inbound payload to the handler of its group and channel.

And ``run_beside``: the actor's main coroutine with its helpers (the read loop, the
heartbeat) running beside it; the first failure of any ends all, nothing is left running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from protocol.topics import TopicError
from services.training.bus import Bus
from services.training.errors import TrainingError
from services.training.topics import Channel, TrainTopic

log = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[bytes], Awaitable[None]]


class Router:
    """Routes of one actor: ``(group, channel) -> handler``."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, Channel], Handler] = {}

    def add(self, topic: TrainTopic, handler: Handler) -> None:
        """Deliver payloads of ``topic`` to ``handler``."""
        self._routes[(topic.group, topic.channel)] = handler

    async def pump(self, bus: Bus) -> None:
        """Read until the connection ends; a bad payload is logged and dropped."""
        async for topic, payload in bus.receive():
            try:
                parsed = TrainTopic.parse(topic)
            except TopicError:
                continue
            handler = self._routes.get((parsed.group, parsed.channel))
            if handler is None:
                continue
            try:
                await handler(payload)
            except TrainingError as exc:
                log.warning("dropped a message on %s: %s", topic, exc)
        raise TrainingError("the broker connection ended")


async def run_beside(main: Awaitable[T], *helpers: Coroutine[Any, Any, None]) -> T:
    """Run ``main`` with ``helpers`` beside it; return its result, raise the first error.

    Helpers run until ``main`` ends (then they are cancelled); a helper that fails or ends
    first ends ``main`` with its error. Every task is awaited before this returns.
    """
    first = asyncio.ensure_future(main)
    tasks = [first, *(asyncio.create_task(h) for h in helpers)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if first in done:
            return first.result()
        ended = done.pop()
        error = ended.exception()
        raise error if error is not None else TrainingError("a helper task ended early")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

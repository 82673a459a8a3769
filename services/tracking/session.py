"""MLflow tracking beside a training: what the aggregator logs, never what holds it up.

``tracking_beside(...)`` opens a ``Tracker`` in the background (a new SQLite store takes
seconds to create its tables) while the rounds go on; ``round`` and ``model`` only queue
what to log. A tracking failure is said once as a WARNING through ``warn`` and the rest is
dropped: the training never waits for MLflow nor fails because of it. At the block's end
what is queued is logged (bounded by the tracker's own timeouts), then the tracker ends.
Without ``mlflow_tracking`` it is ``NO_TRACKING``, which does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

from services.tracking.client import Tracker, TrackingError, TrackingSettings, open_tracker

log = logging.getLogger(__name__)
Warn = Callable[[str], Awaitable[None]]
WARNING = "MLflow tracking failed: {reason}; the training goes on without it"


class Track(Protocol):
    """What the aggregator tells tracking."""

    def round(self, number: int, metrics: dict[str, float]) -> None:
        """Log one round's metrics in a run ``FLOps FL round <n>``."""

    def model(self, number: int, artifact_dir: Path) -> None:
        """Log the artifact's files in the run of its round."""


class _NoTracking:
    def round(self, number: int, metrics: dict[str, float]) -> None:
        """Nothing: tracking is off."""

    def model(self, number: int, artifact_dir: Path) -> None:
        """Nothing: tracking is off."""


NO_TRACKING: Track = _NoTracking()
_Request = tuple[int, dict[str, float] | Path]


class _Queued:
    """The requests, in order; ``None`` ends them."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Request | None] = asyncio.Queue()

    def round(self, number: int, metrics: dict[str, float]) -> None:
        self.queue.put_nowait((number, dict(metrics)))

    def model(self, number: int, artifact_dir: Path) -> None:
        self.queue.put_nowait((number, artifact_dir))

    async def _send(self, tracker: Tracker) -> None:
        while (request := await self.queue.get()) is not None:
            number, what = request
            if isinstance(what, Path):
                await tracker.log_model(number, what)
            else:
                await tracker.log_round(number, what)

    async def _drop(self) -> None:
        while await self.queue.get() is not None:
            pass

    async def run(self, opened: AbstractAsyncContextManager[Tracker], warn: Warn) -> None:
        """Log until the end mark; after a failure, say it once and drop the rest."""
        try:
            async with opened as tracker:
                await self._send(tracker)
        except (TrackingError, OSError, ValueError) as exc:
            log.warning("MLflow tracking failed: %s", exc)
            await warn(WARNING.format(reason=str(exc).rstrip(".")))
            await self._drop()


@asynccontextmanager
async def tracking_beside(
    python: Path, project_id: str, data_dir: Path, settings: TrackingSettings, warn: Warn
) -> AsyncIterator[Track]:
    """``NO_TRACKING`` when off; else a background tracker for the block's duration."""
    if not settings.mlflow_tracking:
        yield NO_TRACKING
        return
    queued = _Queued()
    opened = open_tracker(python, project_id, data_dir, settings)
    task = asyncio.create_task(queued.run(opened, warn))
    try:
        yield queued
    except BaseException:  # the training failed or was cancelled: tracking ends at once
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    queued.queue.put_nowait(None)
    await task

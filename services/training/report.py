"""How training actors report: events for the project's log, with typed data beside them.

``Emit`` is the callback a service is handed (as the builder is). Until the re-housed
``Event`` has its typed ``data`` field, the data travels as the callback's second argument;
the stack attaches it. Events that must appear once in the log (rounds, final lines) get
ids derived from what they report, so a resumed aggregator that sends one again is
recognised by the observer as a repeat.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from protocol.events import Event, Level
from protocol.states import ProjectState
from services.training.messages import EventData


class Emit(Protocol):
    """``await emit(event, data)``: send one event of the project, with its typed data."""

    async def __call__(self, event: Event, data: EventData | None = None, /) -> None:
        """Send ``event``; ``data`` is the typed content of round and final events."""


class Reporter:
    """Builds the events of one actor (its service name is the events' source)."""

    def __init__(self, emit: Emit, project_id: str, source: str) -> None:
        self._emit = emit
        self.project_id = project_id
        self.source = source

    def event_id(self, key: str) -> str:
        """A stable event id for ``key`` of this actor in this project."""
        text = f"{self.project_id}/{self.source}/{key}"
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    async def say(
        self,
        text: str,
        *,
        level: Level = Level.INFO,
        key: str | None = None,
        data: EventData | None = None,
        state: ProjectState | None = None,
    ) -> None:
        """Emit one event; with ``key`` its id is stable across restarts."""
        event = Event(
            project_id=self.project_id,
            source=self.source,
            level=level,
            text=text[:4096],
            state=state,
        )
        if key:
            event = event.model_copy(update={"event_id": self.event_id(key)})
        await self._emit(event, data)

    async def warning(self, text: str, *, key: str | None = None) -> None:
        """A WARNING event."""
        await self.say(text, level=Level.WARNING, key=key)

    async def error(self, text: str, *, fail: bool = False, key: str | None = None) -> None:
        """An ERROR event; with ``fail`` it also puts the project in FAILED."""
        await self.say(
            text, level=Level.ERROR, key=key, state=ProjectState.FAILED if fail else None
        )

"""Events of a project, their typed data, heartbeats and the observer's log entries.

An event says something to people (``text``) and, optionally, to programs (``data``): a
typed, versioned payload picked by its ``type``. Known types are validated strictly by
their own model (``RoundMetrics``); any other type is ``Facts``, a tag and JSON values, so
a new kind of service can report data before its model exists here.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag

from protocol.base import Id, Message
from protocol.states import ProjectState

EVENT_ID = r"^[0-9a-f]{32}$"
DATA_TYPE = r"^[a-z][a-z0-9_]{0,63}$"


class Level(StrEnum):
    """Severity of an event."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def event_id(*parts: str) -> str:
    """A deterministic event id, so a repeated step emits an event the observer de-duplicates."""
    return hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()


class Payload(BaseModel):
    """Base of an event's data: strict keys, a type tag (in each subclass), a version."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    v: Literal[1] = 1


class BestRound(BaseModel):
    """The best round so far by the original's rule (higher accuracy AND lower loss)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    round: int = Field(ge=1)
    loss: float
    accuracy: float = Field(ge=0, le=1)


class RoundMetrics(Payload):
    """One federated-learning round's result, as the aggregator reports it.

    ``best`` is the aggregator's best round so far, this one included (the model it will
    save): ``flops status`` shows it from the last round alone.
    """

    type: Literal["round"] = "round"
    round: int = Field(ge=1)
    loss: float
    accuracy: float = Field(ge=0, le=1)
    examples: int = Field(ge=0)  # training examples of the round, over all learners
    learners: int = Field(ge=1)
    seconds: float = Field(ge=0)
    best: BestRound | None = None


class Facts(Payload):
    """Data of a type without a model of its own: its tag and JSON values."""

    type: str = Field(pattern=DATA_TYPE)
    values: dict[str, JsonValue] = Field(default_factory=dict)


# The typed payloads by tag; every other tag is validated as ``Facts``.
TYPED: dict[str, type[Payload]] = {"round": RoundMetrics}


def _data_tag(value: Any) -> str:  # noqa: ANN401 - a dict or a model, as pydantic hands it
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in TYPED else "facts"


EventData = Annotated[
    Annotated[RoundMetrics, Tag("round")] | Annotated[Facts, Tag("facts")],
    Discriminator(_data_tag),
]


class Event(Message):
    """A user-relevant event of a project, sent to its observer.

    ``state`` is set when the event reports a project state change; the manager applies it.
    ``data`` carries what programs read (round metrics, a stage's result).
    """

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=EVENT_ID)
    project_id: str = Id
    ts: float = Field(default_factory=time.time)
    source: str = Field(min_length=1, max_length=64)
    level: Level = Level.INFO
    text: str = Field(min_length=1, max_length=4096)
    state: ProjectState | None = None
    data: EventData | None = None

    @property
    def data_type(self) -> str | None:
        """The type tag of the event's data, if it has data."""
        return None if self.data is None else self.data.type


class Heartbeat(Message):
    """A running service's sign of life; a silent service fails its project at a deadline."""

    source: str = Field(min_length=1, max_length=64)
    ts: float = Field(default_factory=time.time)


class LogEntry(Message):
    """An event as stored by the observer, with its gapless sequence number (from 1)."""

    seq: int = Field(ge=1)
    event_id: str
    project_id: str
    ts: float
    source: str
    level: Level
    text: str
    state: ProjectState | None = None
    data: EventData | None = None

"""Every message FLOps sends over MQTT, defined once and shared by producers and consumers.

All are JSON objects with ``"v": 1``; unknown fields are refused (``extra="forbid"``).
docs/protocol.md lists each with its topic, QoS and publisher.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VERSION: Literal[1] = 1
Id = Field(pattern=r"^[0-9a-f]{24}$")
RequestId = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
ClientId = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Message(BaseModel):
    """Base of every wire message: strict keys, a version field."""

    # defer_build: a model builds its validator on first use; a CLI command uses a few of
    # the ~30, and building them all at import took ~40 ms of its start-up.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    v: Literal[1] = VERSION


class ProjectState(StrEnum):
    """Explicit project states; the manager is their one authority."""

    STARTING = "STARTING"
    BUILDING = "BUILDING"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def resting(self) -> bool:
        """Whether the project stays in this state without further automatic steps now."""
        return self is not ProjectState.STARTING

    @property
    def final(self) -> bool:
        """Whether the project can never change state again."""
        return self in (ProjectState.FAILED, ProjectState.STOPPED)


class InstanceStatus(StrEnum):
    """Status words of a service instance, as the oak-cli shows them."""

    REQUESTED = "REQUESTED"
    CLUSTER_SCHEDULED = "CLUSTER_SCHEDULED"
    NODE_SCHEDULED = "NODE_SCHEDULED"
    CREATING = "CREATING"
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    DEAD = "DEAD"
    COMPLETED = "COMPLETED"
    UNDEPLOYED = "UNDEPLOYED"


class Level(StrEnum):
    """Severity of an event."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# ---------------------------------------------------------------- requests (client -> manager)


class Request(Message):
    """Common part of every request: a client-made id and where to answer."""

    request_id: str = RequestId
    reply_to: str = ClientId


class CreateProject(Request):
    """Start a project from an SLA (validated again by the manager)."""

    sla: dict[str, Any]
    sla_name: str = Field(default="", max_length=1024)


class ListProjects(Request):
    """List the user's projects."""


class ShowProject(Request):
    """Show one project with its applications and services."""

    project_id: str = Id


class StopProject(Request):
    """Stop a project: undeploy its project services; its log stays readable."""

    project_id: str = Id


class DeleteProject(Request):
    """Delete a project and everything it created, its observer and log included."""

    project_id: str = Id


class ListApps(Request):
    """List the user's applications."""


class ListServices(Request):
    """List the user's services."""


def new_request_id() -> str:
    """A fresh client-side request id."""
    return uuid.uuid4().hex


# ---------------------------------------------------------------- views (answers' payloads)


class Instance(Message):
    """One instance of a service and its status."""

    index: int = 0
    status: InstanceStatus


class AppView(Message):
    """An application as the tables show it."""

    id: str
    name: str
    user: str
    services: int


class ServiceView(Message):
    """A service as the tables show it."""

    id: str
    name: str
    kind: str
    app_id: str
    app_name: str
    project_id: str
    instances: list[Instance]


class ProjectView(Message):
    """A project with its state, applications and services."""

    id: str
    name: str
    user: str
    state: ProjectState
    state_reason: str = ""
    sla_name: str = ""
    request_id: str = ""
    host: str = ""  # the stack (replica) that runs the project's observer and builder
    created_at: float
    updated_at: float
    apps: list[AppView] = []
    services: list[ServiceView] = []


class ErrorBody(Message):
    """A structured error: a stable code, a sentence, and details (e.g. one per field)."""

    code: str
    message: str
    details: list[str] = []


class Reply(Message):
    """The answer to any request; exactly one of ``result`` and ``error`` is set."""

    request_id: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None


class ProjectList(Message):
    """Result of ``list_projects``: the newest ``LIST_LIMIT`` projects and how many exist."""

    projects: list[ProjectView]
    total: int = 0


LIST_LIMIT = 500  # keeps an answer well under the message size limit


class AppList(Message):
    """Result of ``list_apps``."""

    apps: list[AppView]


class ServiceList(Message):
    """Result of ``list_services``."""

    services: list[ServiceView]


# ---------------------------------------------------------------- events and the log


class Event(Message):
    """A user-relevant event of a project, sent to its observer.

    ``state`` is set when the event reports a project state change; the manager applies it.
    """

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    project_id: str = Id
    ts: float = Field(default_factory=time.time)
    source: str = Field(min_length=1, max_length=64)
    level: Level = Level.INFO
    text: str = Field(min_length=1, max_length=4096)
    state: ProjectState | None = None


class Heartbeat(Message):
    """A running service's sign of life; a silent service fails its project at a deadline."""

    source: str = Field(min_length=1, max_length=64)
    ts: float = Field(default_factory=time.time)


class Deleted(Message):
    """Result of ``delete_project``."""

    project_id: str
    removed_apps: list[str]
    removed_services: list[str]


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


class LogQuery(Request):
    """Ask an observer for entries from ``from_seq`` on, or for the last ``last`` entries."""

    from_seq: int = Field(default=1, ge=1)
    last: int | None = Field(default=None, ge=1, le=100_000)
    limit: int = Field(default=1000, ge=1, le=10_000)


class LogPage(Message):
    """Result of a log query; ``next_seq`` is where the next page starts."""

    project_id: str
    entries: list[LogEntry]
    next_seq: int
    state: ProjectState | None = None
    more: bool = False  # the page was cut short (by count or size): ask from next_seq

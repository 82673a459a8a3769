"""Every message FLOps sends over MQTT, defined once and shared by producers and consumers.

All are JSON objects with ``"v": 1``; unknown fields are refused (``extra="forbid"``).
docs/protocol.md lists each with its topic, QoS and publisher.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field, model_validator

from protocol.base import ClientId, Id, Message, RequestId
from protocol.events import LogEntry
from protocol.states import InstanceStatus, ProjectState


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


class ShowModel(Request):
    """Show the manifest and files of a project's trained model (``flops model``)."""

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
    stage: str = ""  # the stage it is in (manager.pipeline); "" before the first, after the last
    created_at: float
    updated_at: float
    apps: list[AppView] = Field(default_factory=list)
    services: list[ServiceView] = Field(default_factory=list)
    inference_url: str = ""  # the trained model's inference service, while it runs


class ErrorBody(Message):
    """A structured error: a stable code, a sentence, and details (e.g. one per field)."""

    code: str
    message: str
    details: list[str] = Field(default_factory=list)


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


# ---------------------------------------------------------------- the log


class Deleted(Message):
    """Result of ``delete_project``."""

    project_id: str
    removed_apps: list[str]
    removed_services: list[str]


class LogQuery(Request):
    """Ask an observer for entries from ``from_seq`` on (default 1), or for the last ``last``.

    Never both: which one should win is not for the observer to guess.
    """

    from_seq: int | None = Field(default=None, ge=1)
    last: int | None = Field(default=None, ge=1, le=100_000)
    limit: int = Field(default=1000, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one_start(self) -> LogQuery:
        if self.from_seq is not None and self.last is not None:
            raise ValueError("from_seq and last exclude each other: send one of them")
        return self

    @property
    def first(self) -> int:
        """The first sequence number asked for (1 when ``from_seq`` is not given)."""
        return self.from_seq or 1


class LogPage(Message):
    """Result of a log query; ``next_seq`` is where the next page starts.

    ``state`` is the project's state as its log last reported it (``STARTING`` until an
    entry reports one); ``more`` is true only when entries after this page exist.
    """

    project_id: str
    entries: list[LogEntry]
    next_seq: int
    state: ProjectState
    more: bool = False  # entries follow this page (it was cut by count or size)

"""The manager's state store interface: applications, services and projects.

The embedded default is SQLite (``manager.sqlite_store``). Implementations enforce the
uniqueness rules themselves (one observatory per user, one project per request id), so
concurrent managers cannot race into duplicates.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.messages import AppView, InstanceStatus, ProjectState, ProjectView, ServiceView


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What a runtime needs to run one service."""

    id: str
    name: str
    kind: str  # "observer" or "builder"
    user: str
    project_id: str
    app_id: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewProject:
    """The records made for a new project in one transaction."""

    project: ProjectView
    observer: ServiceSpec


# Allowed project state changes; anything else is refused.
TRANSITIONS: dict[ProjectState, set[ProjectState]] = {
    ProjectState.STARTING: {ProjectState.BUILDING, ProjectState.FAILED, ProjectState.STOPPED},
    ProjectState.BUILDING: {ProjectState.FAILED, ProjectState.STOPPED},
    ProjectState.FAILED: set(),
    ProjectState.STOPPED: set(),
}

# Instance statuses of a service that should be running (restored after a restart).
RUNNABLE = (
    InstanceStatus.REQUESTED,
    InstanceStatus.CREATING,
    InstanceStatus.CREATED,
    InstanceStatus.RUNNING,
)

# How far a project's start has got; start steps are idempotent and resume from here.
STEP_CREATED = 0
STEP_OBSERVER_RUNNING = 1
STEP_BUILDER_ANNOUNCED = 2


class Store(Protocol):
    """Durable manager state."""

    async def project_by_request(self, user: str, request_id: str) -> ProjectView | None:
        """The project made for ``request_id`` of ``user``, if any."""

    async def create_project(
        self,
        user: str,
        request_id: str,
        sla: dict[str, Any],
        sla_name: str,
        observer_config: dict[str, Any],
        host: str = "",
    ) -> NewProject:
        """Create a project atomically, with what its start needs first.

        Gets or creates the user's observatory, creates the project application, the
        project (STARTING) and its observer service (REQUESTED).
        """

    async def delete_project(self, project_id: str) -> None:
        """Remove a project and everything it created (the observatory stays if still used)."""

    async def add_service(
        self, project_id: str, kind: str, name: str, in_observatory: bool, config: dict[str, Any]
    ) -> ServiceSpec:
        """Create a service of a project, or return the existing one of that name."""

    async def set_instance_status(self, service_id: str, status: InstanceStatus) -> None:
        """Record the status of a service's instance 0."""

    async def set_state(self, project_id: str, state: ProjectState, reason: str) -> bool:
        """Change a project's state if the transition is allowed; say whether it changed."""

    async def set_step(self, project_id: str, step: int) -> None:
        """Record how far a project's start has got."""

    async def deployed(
        self, service_id: str, status: InstanceStatus, project_id: str, step: int
    ) -> None:
        """``set_instance_status`` and ``set_step`` at once (one transaction where there are)."""

    async def step(self, project_id: str) -> int:
        """How far a project's start has got."""

    async def owner_and_state(self, project_id: str) -> tuple[str, ProjectState] | None:
        """A project's user and state, cheaply (no applications or services)."""

    async def project_sla(self, project_id: str) -> dict[str, Any]:
        """The SLA a project was started with."""

    async def project(self, project_id: str) -> ProjectView | None:
        """One project with its applications and services."""

    async def projects(self, user: str) -> list[ProjectView]:
        """The user's projects, oldest first (without apps and services)."""

    async def live_projects(self, user: str) -> int:
        """How many of the user's projects are neither FAILED nor STOPPED (a quota counts them)."""

    async def apps(self, user: str) -> list[AppView]:
        """The user's applications."""

    async def services(self, user: str) -> list[ServiceView]:
        """The user's services."""

    async def project_services(self, project_id: str) -> list[ServiceSpec]:
        """The services of one project, oldest first."""

    async def services_to_run(self, host: str | None = None) -> list[ServiceSpec]:
        """Services that should be running; with ``host``, only those of its projects."""

    async def unfinished_projects(self, host: str = "") -> list[str]:
        """Projects of ``host`` (or of no host) whose start did not finish, to resume."""

    async def answer_for(self, user: str, request_id: str) -> dict[str, Any] | None:
        """The answer already given to a request id, if any (for exactly-once effects)."""

    async def remember_answer(self, user: str, request_id: str, answer: dict[str, Any]) -> None:
        """Keep the answer to a request id, so a repeated request gets the same one."""

    async def maintain(self, stop: asyncio.Event) -> None:
        """Background upkeep until ``stop`` (SQLite: WAL checkpoints; may return at once)."""

    async def close(self) -> None:
        """Release the store."""

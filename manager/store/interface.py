"""The manager's state store interface: applications, services and projects.

The embedded default is SQLite (``manager.store.sqlite``). Implementations enforce the
uniqueness rules themselves (one observatory per user, one project per request id), so
concurrent managers cannot race into duplicates.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.messages import AppView, ProjectView, ServiceView
from protocol.states import InstanceStatus, ProjectState
from services.spec import ServiceSpec


@dataclass(frozen=True, slots=True)
class NewProject:
    """The records made for a new project in one transaction."""

    project: ProjectView
    observer: ServiceSpec


@dataclass(frozen=True, slots=True)
class NewService:
    """A service to add to a project (``Store.add_services``)."""

    kind: str
    name: str
    in_observatory: bool = False
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entered:
    """What ``Store.enter_stage`` wrote: the stage's services, and where the project stands."""

    services: list[ServiceSpec]
    in_state: bool  # the project is in the stage's state (moved now, or before a crash)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a project stands, in one read: what ``manager.pipeline`` needs to carry it on.

    The store keeps the stage's name and whether its services are deployed, and each ended
    stage's output, without knowing what any stage is. ``stage`` is ``""`` before the first
    stage is entered (``ready`` False) and after the last one ended (``ready`` True).
    """

    project_id: str
    user: str
    state: ProjectState
    host: str
    sla: dict[str, Any]
    sla_name: str
    stage: str
    ready: bool  # the stage's services are deployed and announced
    outputs: dict[str, Any]  # by stage name: the data of the event that ended it


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
        observer_status: InstanceStatus = InstanceStatus.REQUESTED,
    ) -> NewProject:
        """Create a project atomically, with what its start needs first.

        Gets or creates the user's observatory, creates the project application, the
        project (STARTING) and its observer service (in ``observer_status``: the status its
        deployment is expected to give, written now and corrected by the caller if it
        differs, so that a start needs no write of its own for it).
        """

    async def delete_project(self, project_id: str) -> None:
        """Remove a project and everything it created (the observatory stays if still used)."""

    async def add_services(self, project_id: str, services: list[NewService]) -> list[ServiceSpec]:
        """Create services of a project at once; one that exists by name is returned as it is."""

    async def enter_stage(
        self,
        project_id: str,
        services: list[NewService],
        state: tuple[ProjectState, str] | None = None,
    ) -> Entered:
        """Add a stage's services (as ``add_services``) and enter its ``state``, in one write.

        The state (and its reason) is entered if the transition is allowed; ``in_state``
        says whether the project is in it now, entered now or earlier (a stage entered
        again after a crash). The stage is not ready until ``stage_deployed``.
        """

    async def set_instance_status(self, service_id: str, status: InstanceStatus) -> None:
        """Record the status of a service's instance 0."""

    async def set_state(self, project_id: str, state: ProjectState, reason: str) -> bool:
        """Change a project's state if the transition is allowed; say whether it changed."""

    async def progress(self, project_id: str) -> Progress | None:
        """Where a project stands (see ``Progress``)."""

    async def stage_deployed(
        self,
        project_id: str,
        stage: str,
        statuses: dict[str, InstanceStatus],
        state: tuple[ProjectState, str] | None = None,
    ) -> bool:
        """The services of ``stage`` are deployed with ``statuses`` (by service id): it is ready.

        With ``state`` (a state and its reason) the project enters that state in the same
        write, if the transition is allowed; says whether it did (``False`` without one).
        """

    async def end_stage(
        self, project_id: str, stage: str, following: str, output: dict[str, Any]
    ) -> bool:
        """End the ready ``stage`` with its ``output`` and go to ``following`` ("" for none).

        Only if the project is in ``stage`` and it is ready; say whether it ended now, so an
        ending event that arrives twice moves the project on once.
        """

    async def refresh_output(self, project_id: str, stage: str, output: dict[str, Any]) -> bool:
        """Replace the output of ``stage``, which ended earlier; whether it had one."""

    async def owner_and_state(self, project_id: str) -> tuple[str, ProjectState] | None:
        """A project's user and state, cheaply (no applications or services)."""

    async def project(self, project_id: str) -> ProjectView | None:
        """One project with its applications and services."""

    async def projects(self, user: str) -> list[ProjectView]:
        """The user's projects, oldest first (without apps and services)."""

    async def live_projects(self, user: str) -> int:
        """How many of the user's projects are not in a final state (a quota counts them)."""

    async def apps(self, user: str) -> list[AppView]:
        """The user's applications."""

    async def services(self, user: str) -> list[ServiceView]:
        """The user's services."""

    async def project_services(self, project_id: str) -> list[ServiceSpec]:
        """The services of one project, oldest first."""

    async def services_to_run(
        self, host: str | None = None, *, project_id: str | None = None
    ) -> list[ServiceSpec]:
        """Services that should be running; with ``host``, only those of its projects.

        With ``project_id``, only that project's: a query of its own, so that a stage's end
        does not cost a read of every project's services.
        """

    async def unfinished_projects(self, host: str = "") -> list[str]:
        """Projects of ``host`` (or of no host) to carry on: not final, their stage not ready."""

    async def answer_for(self, user: str, request_id: str) -> dict[str, Any] | None:
        """The answer already given to a request id, if any (for exactly-once effects)."""

    async def remember_answer(self, user: str, request_id: str, answer: dict[str, Any]) -> None:
        """Keep the answer to a request id, so a repeated request gets the same one."""

    async def maintain(self, stop: asyncio.Event) -> None:
        """Background upkeep until ``stop`` (SQLite: WAL checkpoints; may return at once)."""

    async def close(self) -> None:
        """Release the store."""

"""The manager's decisions, as plain async functions over typed messages.

They take their dependencies as arguments and know nothing of MQTT, so tests call them
without a broker. ``RefusedError`` carries a stable code for the error answer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from broker.messages import (
    AppList,
    CreateProject,
    Event,
    Level,
    ListApps,
    ListProjects,
    ListServices,
    ProjectList,
    ProjectState,
    ProjectView,
    ServiceList,
    ShowProject,
)
from core import ids
from core.errors import DeployError, FlopsError, SLAError, StoreError
from manager.deploy import Runtime
from manager.store import STEP_BUILDER_ANNOUNCED, STEP_OBSERVER_RUNNING, ServiceSpec, Store
from slas import ProjectSLA, parse_sla

log = logging.getLogger(__name__)
MANAGER = "manager"


class RefusedError(FlopsError):
    """A request the manager will not carry out; ``code`` is stable for clients."""

    def __init__(self, code: str, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or []


@dataclass
class Deps:
    """What the handlers need: the store, the runtime, a way to emit events, settings."""

    store: Store
    runtime: Runtime
    emit: Callable[[str, Event], Awaitable[None]]  # (user, event)
    registry: str = "localhost:5073"
    git_timeout: float = 30.0


def stable_event_id(*parts: str) -> str:
    """A deterministic event id, so a repeated step emits an event the observer de-duplicates."""
    return hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()


def validate_sla(user: str, req: CreateProject) -> ProjectSLA:
    """Validate the SLA again (never trust the client) and bind it to the topic's user."""
    try:
        sla = parse_sla(req.sla, req.sla_name or "request")
    except SLAError as exc:
        raise RefusedError("invalid_sla", str(exc).split("\n", 1)[0], exc.problems) from exc
    if sla.customerID != user:
        raise RefusedError(
            "forbidden",
            f"the SLA's customerID {sla.customerID!r} is not the requesting user {user!r}",
        )
    return sla


async def create_project(user: str, req: CreateProject, deps: Deps) -> ProjectView:
    """Validate, then create (or return, for a repeated request id) the project.

    Runs its observer; nothing is left behind when a step fails.
    """
    validate_sla(user, req)
    existing = await deps.store.project_by_request(user, req.request_id)
    if existing is not None:
        return existing
    try:
        new = await deps.store.create_project(user, req.request_id, req.sla, req.sla_name, {})
    except StoreError:
        existing = await deps.store.project_by_request(user, req.request_id)
        if existing is None:
            raise
        return existing
    project_id = new.project.id
    try:
        await _deploy(new.observer, deps)
    except DeployError as exc:
        await deps.store.delete_project(project_id)
        raise RefusedError(
            "deploy_failed", f"the observer service could not be deployed: {exc}"
        ) from exc
    await deps.store.set_step(project_id, STEP_OBSERVER_RUNNING)
    view = await deps.store.project(project_id)
    if view is None:
        raise StoreError(f"project {project_id} vanished")
    return view


async def _deploy(spec: ServiceSpec, deps: Deps) -> None:
    status = await deps.runtime.deploy(spec)
    await deps.store.set_instance_status(spec.id, status)


async def advance(project_id: str, deps: Deps) -> None:
    """Carry a project's start on from where it stands; every step is safe to repeat."""
    view = await deps.store.project(project_id)
    if view is None or view.state is not ProjectState.STARTING:
        return
    step = await deps.store.step(project_id)
    if step < STEP_OBSERVER_RUNNING:
        for spec in await deps.store.project_services(project_id):
            if spec.kind == "observer":
                await _deploy(spec, deps)
        await deps.store.set_step(project_id, STEP_OBSERVER_RUNNING)
    if step < STEP_BUILDER_ANNOUNCED:
        await _start_builder(view, deps)


async def _start_builder(view: ProjectView, deps: Deps) -> None:
    sla = await _sla_of(view, deps)
    builder = await deps.store.add_service(
        view.id,
        "builder",
        ids.builder_name(view.id),
        in_observatory=False,
        config={
            "repo_url": sla.ml_repo_url,
            "registry": deps.registry,
            "git_timeout": deps.git_timeout,
        },
    )
    try:
        status = await deps.runtime.deploy(builder)
    except DeployError as exc:
        await fail(view, f"the builder service could not be deployed: {exc}", deps)
        return
    # Emitted before anything else awaits, so it goes out ahead of the builder's own events.
    await deps.emit(
        view.user,
        Event(
            event_id=stable_event_id(builder.id, "deployed"),
            project_id=view.id,
            source=MANAGER,
            text="New Builder service created & deployed",
        ),
    )
    await deps.store.set_instance_status(builder.id, status)
    await deps.store.set_step(view.id, STEP_BUILDER_ANNOUNCED)


async def _sla_of(view: ProjectView, deps: Deps) -> ProjectSLA:
    raw = await deps.store.project_sla(view.id)
    return parse_sla(raw, view.sla_name or view.id)


async def fail(view: ProjectView, reason: str, deps: Deps) -> None:
    """Mark a project failed and tell its observer why."""
    if await deps.store.set_state(view.id, ProjectState.FAILED, reason):
        await deps.emit(
            view.user,
            Event(
                event_id=stable_event_id(view.id, "failed"),
                project_id=view.id,
                source=MANAGER,
                level=Level.ERROR,
                text=f"Project failed: {reason}",
                state=ProjectState.FAILED,
            ),
        )


async def apply_event(user: str, project_id: str, event: Event, deps: Deps) -> None:
    """Apply the project state an event reports.

    Only for the user's own project, and only along an allowed transition.
    """
    if event.state is None or event.project_id != project_id:
        return
    view = await deps.store.project(project_id)
    if view is None or view.user != user:
        log.warning("state event for unknown project %s of %s dropped", project_id, user)
        return
    if view.state is event.state:
        return
    if not await deps.store.set_state(project_id, event.state, event.text):
        log.warning("project %s: %s -> %s refused", project_id, view.state, event.state)


async def list_projects(user: str, _req: ListProjects, deps: Deps) -> ProjectList:
    """The user's projects."""
    return ProjectList(projects=await deps.store.projects(user))


async def show_project(user: str, req: ShowProject, deps: Deps) -> ProjectView:
    """One of the user's projects; another user's project is reported as not found."""
    view = await deps.store.project(req.project_id)
    if view is None or view.user != user:
        raise RefusedError("not_found", f"no project {req.project_id} for user {user!r}")
    return view


async def list_apps(user: str, _req: ListApps, deps: Deps) -> AppList:
    """The user's applications."""
    return AppList(apps=await deps.store.apps(user))


async def list_services(user: str, _req: ListServices, deps: Deps) -> ServiceList:
    """The user's services."""
    return ServiceList(services=await deps.store.services(user))

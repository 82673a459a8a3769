"""The manager's decisions on project start and queries, as plain async functions.

They take typed messages and their dependencies as arguments and know nothing of MQTT,
so tests call them without a broker. Stop, delete, failure and the watchdog are in
``manager.lifecycle``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from broker.messages import (
    LIST_LIMIT,
    AppList,
    CreateProject,
    Event,
    InstanceStatus,
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
from core.errors import DeployError, SLAError, StoreError
from core.logs import shown
from manager.deps import MANAGER, Deps, RefusedError, stable_event_id
from manager.lifecycle import fail, own_project
from manager.store import STEP_BUILDER_ANNOUNCED, STEP_OBSERVER_RUNNING, ServiceSpec
from slas import ProjectSLA, parse_sla

log = logging.getLogger(__name__)


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


def check_repository(sla: ProjectSLA, roots: tuple[Path, ...] | None) -> None:
    """Refuse a ``file://`` repository outside ``roots`` (the setting ``local_repo_roots``).

    The builder reads it with the stack's rights and tells the user whether it is a git
    repository and its HEAD; ``None`` allows any folder (the single-user default).
    """
    url = urlsplit(sla.ml_repo_url)
    if url.scheme != "file" or roots is None:
        return
    # Both the path as written and as percent-decoded, each with links and '..' resolved.
    paths = {os.path.realpath(url.path), os.path.realpath(unquote(url.path))}
    if roots and all(
        any(Path(p).is_relative_to(os.path.realpath(root)) for root in roots) for p in paths
    ):
        return
    raise RefusedError(
        "forbidden",
        f"ml_repo_url {shown(sla.ml_repo_url)}: this stack allows file:// repositories "
        + ("only in the folders of its setting local_repo_roots" if roots else "in no folder")
        + " (docs/security.md)",
    )


async def create_project(user: str, req: CreateProject, deps: Deps) -> ProjectView:
    """Validate, then create the project and run its observer.

    A repeated request id returns the project it made (finishing its observer if a crash
    interrupted it); nothing is left behind when the observer cannot be deployed.
    """
    check_repository(validate_sla(user, req), deps.repo_roots)
    existing, observer = await _made_for(user, req, deps)
    if mine(existing, deps):
        async with deps.locks.hold(existing.id):
            if observer is not None:
                # Made just now, at step 0 with this one observer: the answer is the view
                # just read with the observer's new status, not a third read of the store.
                status = await _deploy_observer(existing.id, observer, deps)
                return _with_status(existing, observer.id, status)
            await _ensure_observer(existing.id, deps)
    view = await deps.store.project(existing.id)
    if view is None:
        raise RefusedError("not_found", f"project {existing.id} was deleted meanwhile")
    return view


def _with_status(view: ProjectView, service_id: str, status: InstanceStatus) -> ProjectView:
    """``view`` with the instances of one service in ``status``."""
    services = [
        s.model_copy(
            update={"instances": [i.model_copy(update={"status": status}) for i in s.instances]}
        )
        if s.id == service_id
        else s
        for s in view.services
    ]
    return view.model_copy(update={"services": services})


async def _made_for(
    user: str, req: CreateProject, deps: Deps
) -> tuple[ProjectView, ServiceSpec | None]:
    """The project of this request id: found, or made now, or made by a racing replica.

    With the project made now comes its observer's spec (``None`` for one found). Two
    managers may handle one request id at once (a retry reached another replica); the
    loser of the unique index waits briefly for the winner's project to appear.
    """
    for _ in range(2):
        existing = await deps.store.project_by_request(user, req.request_id)
        if existing is not None:
            return existing, None
        try:
            async with deps.quotas.admit(user, deps.store) as made:
                new = await deps.store.create_project(
                    user, req.request_id, req.sla, req.sla_name, {}, deps.host
                )
                made()
        except StoreError as exc:
            log.info(
                "request %s: %s; waiting for the project of a racing replica", req.request_id, exc
            )
            for _ in range(40):
                await asyncio.sleep(0.05)
                existing = await deps.store.project_by_request(user, req.request_id)
                if existing is not None:
                    return existing, None
        else:
            return new.project, new.observer
    raise StoreError(f"request {req.request_id}: no project made, and creating one failed")


def mine(view: ProjectView, deps: Deps) -> bool:
    """Whether this replica runs the project's services (the one that created it does)."""
    return view.host in ("", deps.host)


async def _ensure_observer(project_id: str, deps: Deps) -> None:
    if await deps.store.step(project_id) >= STEP_OBSERVER_RUNNING:
        return
    observers = [s for s in await deps.store.project_services(project_id) if s.kind == "observer"]
    for spec in observers:
        await _deploy_observer(project_id, spec, deps)
    if not observers:
        await deps.store.set_step(project_id, STEP_OBSERVER_RUNNING)


async def _deploy_observer(project_id: str, spec: ServiceSpec, deps: Deps) -> InstanceStatus:
    """Deploy the observer and record it; a project whose observer fails is removed."""
    try:
        status = await deps.runtime.deploy(spec)
    except DeployError as exc:
        await deps.store.delete_project(project_id)
        raise RefusedError(
            "deploy_failed", f"the observer service could not be deployed: {exc}"
        ) from exc
    await deps.store.deployed(spec.id, status, project_id, STEP_OBSERVER_RUNNING)
    return status


async def advance(project_id: str, deps: Deps, known: ProjectView | None = None) -> None:
    """Carry a project's start on from where it stands; every step is safe to repeat.

    ``known`` is the project's view as just answered: only its state is read again.
    """
    async with deps.locks.hold(project_id):
        if known is None:
            view = await deps.store.project(project_id)
            state = view.state if view is not None else None
        else:
            view, head = known, await deps.store.owner_and_state(project_id)
            state = head[1] if head is not None else None
        if view is None or state is not ProjectState.STARTING or not mine(view, deps):
            return
        step = await deps.store.step(project_id)
        if step < STEP_OBSERVER_RUNNING:
            await _ensure_observer(project_id, deps)
        if step < STEP_BUILDER_ANNOUNCED:
            await _start_builder(view, deps)


async def _start_builder(view: ProjectView, deps: Deps) -> None:
    sla = parse_sla(await deps.store.project_sla(view.id), view.sla_name or view.id)
    builder = await deps.store.add_service(
        view.id,
        "builder",
        ids.builder_name(view.id),
        in_observatory=False,
        config={
            "repo_url": sla.ml_repo_url,
            "registry": deps.registry,
            "git_timeout": deps.git_timeout,
            "heartbeat_interval": deps.service_deadline / 4,
        },
    )
    deps.liveness.deploy(builder.name)
    try:
        status = await deps.runtime.deploy(builder)
    except DeployError as exc:
        deps.liveness.forget(builder.name)
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
    await deps.store.deployed(builder.id, status, view.id, STEP_BUILDER_ANNOUNCED)


async def list_projects(user: str, _req: ListProjects, deps: Deps) -> ProjectList:
    """The user's projects."""
    projects = await deps.store.projects(user)
    return ProjectList(projects=projects[-LIST_LIMIT:], total=len(projects))


async def show_project(user: str, req: ShowProject, deps: Deps) -> ProjectView:
    """One of the user's projects."""
    return await own_project(user, req.project_id, deps)


async def list_apps(user: str, _req: ListApps, deps: Deps) -> AppList:
    """The user's applications."""
    return AppList(apps=await deps.store.apps(user))


async def list_services(user: str, _req: ListServices, deps: Deps) -> ServiceList:
    """The user's services."""
    return ServiceList(services=await deps.store.services(user))

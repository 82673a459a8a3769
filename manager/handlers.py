"""The manager's decisions on project start, its stages, and queries, as async functions.

They take typed messages and their dependencies as arguments and know nothing of MQTT,
so tests call them without a broker. ``advance`` carries a project through the stages of
``manager.pipeline``; stop, delete, failure and the watchdog are in ``manager.lifecycle``;
events come in through ``manager.events``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from core.errors import DeployError, FlopsError, SLAError, StoreError
from core.logs import shown
from manager.deps import MANAGER, Deps, RefusedError
from manager.lifecycle import fail, own_project, set_state, state_event, undeploy
from manager.pipeline import Stage, StageInput, Want
from manager.store.interface import NewService, Progress
from manager.told import Told
from protocol.events import Event, event_id
from protocol.messages import (
    LIST_LIMIT,
    AppList,
    CreateProject,
    ListApps,
    ListProjects,
    ListServices,
    ProjectList,
    ProjectView,
    ServiceList,
    ShowProject,
)
from protocol.states import RUNNABLE, InstanceStatus, ProjectState
from runtimes.base import Clusters
from services.kinds import TRMODEL, kind_of
from services.spec import ServiceSpec
from services.trmodel.facts import inference_url
from slas import ProjectSLA, parse_sla

log = logging.getLogger(__name__)
# The observer's status as the project is made: what its deployment gives on the runtimes
# that run it at once; corrected if its deployment gives another (``_deploy_observer``).
OBSERVER_EXPECTED = InstanceStatus.RUNNING


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
    sla = validate_sla(user, req)
    check_repository(sla, deps.repo_roots)
    existing, observer = await _made_for(user, req, deps)
    if observer is not None:  # made now from this SLA (a repeated request id may differ)
        _remember_sla(existing.id, sla, deps)
    if mine(existing, deps):
        async with deps.locks.hold(existing.id):
            if observer is not None:
                # Made just now, at step 0 with this one observer: the answer is the view
                # just made with the observer's status, not a read of the store.
                status = await _deploy_observer(existing.id, observer, deps, OBSERVER_EXPECTED)
                if status is OBSERVER_EXPECTED:
                    return existing  # made in that status already
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
                    user, req.request_id, req.sla, req.sla_name, {}, deps.host, OBSERVER_EXPECTED
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
    """Deploy the project's observer if a crash left it undeployed (still REQUESTED)."""
    view = await deps.store.project(project_id)
    waiting = {
        s.id
        for s in (view.services if view is not None else [])
        if kind_of(s.kind).entry is None and s.instances[0].status is InstanceStatus.REQUESTED
    }
    if not waiting:
        return
    for spec in await deps.store.project_services(project_id):
        if spec.id in waiting:
            await _deploy_observer(project_id, spec, deps)


async def _deploy_observer(
    project_id: str,
    spec: ServiceSpec,
    deps: Deps,
    written: InstanceStatus = InstanceStatus.REQUESTED,
) -> InstanceStatus:
    """Deploy the observer and record its status if not ``written`` already.

    A project whose observer fails is removed. One whose deployment was cut short otherwise
    (its log could not be written, a shutdown) is left REQUESTED, so that a repeated request
    or the next start deploys it (``_ensure_observer``, the stack's restore).
    """
    try:
        status = await deps.runtime.deploy(spec)
    except DeployError as exc:
        await deps.store.delete_project(project_id)
        raise RefusedError(
            "deploy_failed", f"the observer service could not be deployed: {exc}"
        ) from exc
    except BaseException:
        if written is not InstanceStatus.REQUESTED:
            await deps.store.set_instance_status(spec.id, InstanceStatus.REQUESTED)
        raise
    if status is not written:
        await deps.store.set_instance_status(spec.id, status)
    return status


async def advance(project_id: str, deps: Deps, known: ProjectView | None = None) -> None:
    """Carry a project on from where it stands: enter its stage if it is not deployed yet.

    Every step is safe to repeat. ``known`` is the project's view as just answered (its
    observer was deployed a moment ago); without it, the observer is made sure of first.
    """
    async with deps.locks.hold(project_id):
        observed = known is not None
        while True:
            now = await deps.store.progress(project_id)
            if now is None or now.state.final or now.ready or now.host not in ("", deps.host):
                return
            if not observed:
                await _ensure_observer(project_id, deps)
                observed = True
            stage = deps.pipeline.stage(now.stage)
            given = stage_input(now, deps)
            if stage.enters(given):
                await enter(now, stage, given, deps)
                return
            await deps.store.stage_deployed(project_id, stage.name, {})  # skipped: no services
            await end_stage(now, stage, {}, deps)


SLAS_KEPT = 1024  # validated SLAs kept by project (Deps.slas), the oldest forgotten first


def _remember_sla(project_id: str, sla: ProjectSLA, deps: Deps) -> None:
    deps.slas[project_id] = sla
    if len(deps.slas) > SLAS_KEPT:
        del deps.slas[next(iter(deps.slas))]


def project_sla(now: Progress, deps: Deps) -> ProjectSLA:
    """The project's SLA, validated once per process: its start's, or the store's copy."""
    sla = deps.slas.get(now.project_id)
    if sla is None:
        sla = parse_sla(now.sla, now.sla_name or now.project_id)
        _remember_sla(now.project_id, sla, deps)
    return sla


def stage_input(now: Progress, deps: Deps) -> StageInput:
    """What a stage decides from."""
    sla = project_sla(now, deps)
    settings = dataclasses.replace(deps.stages, heartbeat_interval=deps.service_deadline / 4)
    return StageInput(now.project_id, now.user, sla, now.outputs, settings)


async def enter(now: Progress, stage: Stage, given: StageInput, deps: Deps) -> None:
    """Deploy the stage's services and announce each; a failed deploy fails the project.

    Its services are recorded with its state in one write, then deployed, each announced
    the moment it is; the stage counts as deployed once the log has stored what it was told
    (``manager.told``). The state is decided before the deployments, so its entry goes to
    the log with the announcements: the log hears of a state only after the store has it.
    A stage that cannot say what to deploy (an earlier stage's output is missing or wrong)
    fails the project with its reason too, as does a stage placed in the runtime's clusters
    when the runtime cannot name an active one.
    """
    try:
        if stage.places(given) and isinstance(deps.runtime, Clusters):
            given = dataclasses.replace(given, clusters=await _active_clusters(deps.runtime))
        wants = stage.services(given)
    except FlopsError as exc:
        await fail(now.project_id, now.user, f"stage {stage.name}: {exc}", deps)
        return
    new = [
        NewService(
            w.kind.name,
            w.kind.name_for(now.project_id, w.index),
            w.kind.in_observatory,
            w.config.model_dump(mode="json"),
        )
        for w in wants
    ]
    statuses: dict[str, InstanceStatus] = {}
    runs = _runs(wants, [n.name for n in new])
    state = None if stage.state is None else (stage.state, f"stage {stage.name}")
    entered = await deps.store.enter_stage(now.project_id, new, state)
    told = Told(deps, now.user)
    for position, (want, spec) in enumerate(zip(wants, entered.services, strict=True)):
        for number, line in enumerate(want.before):
            await told.tell(
                Event(
                    event_id=event_id(spec.id, "before", str(number)),
                    project_id=now.project_id,
                    source=MANAGER,
                    text=line,
                )
            )
        if want.kind.watched:
            deps.liveness.deploy(spec.name)
        try:
            statuses[spec.id] = await deps.runtime.deploy(spec)
        except DeployError as exc:
            deps.liveness.forget(spec.name)
            await told.stored()
            reason = f"the {want.kind.name} service could not be deployed: {exc}"
            await fail(now.project_id, now.user, reason, deps)
            return
        if position in runs:
            # Told before anything else awaits, so it goes out ahead of the service's events.
            await _announce(now, want.kind.label, spec.id, runs[position], told)
    if state is not None and entered.in_state:
        await told.tell(state_event(now.project_id, *state))
    await told.stored()
    await deps.store.stage_deployed(now.project_id, stage.name, statuses)


async def _active_clusters(runtime: Clusters) -> tuple[str, ...]:
    """The runtime's active clusters; ``DeployError`` when it names none."""
    names = tuple(await runtime.active_clusters())
    if not names:
        raise DeployError("the runtime has no active cluster to place the services in")
    return names


def _runs(wants: list[Want], names: list[str]) -> dict[int, list[str]]:
    """The first want of each run of one kind, with the names of the run's services.

    The original deployed a stage's learners as one service with several instances: its log
    announces a run of one kind once (``New FL Learners service created & deployed``).
    """
    runs: dict[int, list[str]] = {}
    first = 0
    for position, want in enumerate(wants):
        if position == 0 or want.kind is not wants[position - 1].kind:
            first = position
            runs[first] = []
        runs[first].append(names[position])
    return runs


async def _announce(now: Progress, label: str, first_id: str, names: list[str], told: Told) -> None:
    """``New <label> service created & deployed``, then its instances' names if several."""
    lines = [f"New {label} service created & deployed"]
    if len(names) > 1:
        lines.append(f"{label} instances: {', '.join(names)}")
    for number, text in enumerate(lines):
        key = ("deployed",) if number == 0 else ("deployed", "instances")
        await told.tell(
            Event(
                event_id=event_id(first_id, *key),
                project_id=now.project_id,
                source=MANAGER,
                text=text,
            )
        )


async def end_stage(now: Progress, stage: Stage, output: dict[str, Any], deps: Deps) -> bool:
    """End ``stage`` with ``output``; stop what it says; say whether another stage follows.

    After the last stage the project is COMPLETED. The caller holds the project's lock.
    """
    if not await deps.store.end_stage(now.project_id, stage.name, stage.next or "", output):
        return False
    for spec in await deps.store.services_to_run(project_id=now.project_id):
        if spec.kind in stage.undeploys:
            await undeploy(spec, deps, InstanceStatus.UNDEPLOYED, purge=False)
    closing = stage.closing(stage_input(now, deps))
    if closing:
        await deps.emit(
            now.user,
            Event(
                event_id=event_id(now.project_id, stage.name, "closing"),
                project_id=now.project_id,
                source=MANAGER,
                text=closing,
            ),
        )
    if stage.next is None:
        await set_state(now.project_id, now.user, ProjectState.COMPLETED, "completed", deps)
    return stage.next is not None


async def list_projects(user: str, _req: ListProjects, deps: Deps) -> ProjectList:
    """The user's projects."""
    projects = await deps.store.projects(user)
    return ProjectList(projects=projects[-LIST_LIMIT:], total=len(projects))


async def show_project(user: str, req: ShowProject, deps: Deps) -> ProjectView:
    """One of the user's projects, with its inference service's URL while that runs."""
    view = await own_project(user, req.project_id, deps)
    serving = any(
        s.kind == TRMODEL.name and s.instances and s.instances[0].status in RUNNABLE
        for s in view.services
    )
    now = await deps.store.progress(view.id) if serving else None
    if now is None:
        return view
    return view.model_copy(update={"inference_url": inference_url(now.outputs)})


async def list_apps(user: str, _req: ListApps, deps: Deps) -> AppList:
    """The user's applications."""
    return AppList(apps=await deps.store.apps(user))


async def list_services(user: str, _req: ListServices, deps: Deps) -> ServiceList:
    """The user's services."""
    return ServiceList(services=await deps.store.services(user))

"""The rest of a project's life: state events, stop, delete, failure and the watchdog.

Callers hold the project's lock (``Deps.locks``) around anything that changes a project;
``fail`` assumes it is held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from manager.deps import MANAGER, Deps, RefusedError
from protocol.events import Event, Level, event_id
from protocol.messages import Deleted, DeleteProject, ProjectView, StopProject
from protocol.states import InstanceStatus, ProjectState
from services.kinds import KINDS, ServiceKind
from services.spec import ServiceSpec

log = logging.getLogger(__name__)


async def own_project(user: str, project_id: str, deps: Deps) -> ProjectView:
    """The user's project ``project_id``; another user's is reported as not found."""
    view = await deps.store.project(project_id)
    if view is None or view.user != user:
        raise RefusedError("not_found", f"no project {project_id} for user {user!r}")
    return view


async def undeploy(spec: ServiceSpec, deps: Deps, status: InstanceStatus, purge: bool) -> None:
    """Stop a service, forget its deadline, and record its status (unless purged)."""
    deps.liveness.forget(spec.name)
    await deps.runtime.undeploy(spec, purge=purge)
    if not purge:
        await deps.store.set_instance_status(spec.id, status)


async def undeploy_all(
    specs: list[ServiceSpec], deps: Deps, status: InstanceStatus, purge: bool
) -> None:
    """``undeploy`` each at once: a stop waits for the slowest service, not for their sum.

    A service process gets a grace period to drain after SIGTERM; one after the other, ten
    learners could keep ``flops stop`` from answering within the CLI's timeout. Every one
    is tried; the first failure, if any, is raised after all have ended.
    """
    results = await asyncio.gather(
        *(undeploy(spec, deps, status, purge) for spec in specs), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _kind(spec: ServiceSpec) -> ServiceKind[Any] | None:
    return KINDS.get(spec.kind)


async def _project_services(project_id: str, deps: Deps) -> list[ServiceSpec]:
    """The services of the project's own application (not its observer in the observatory)."""
    return _own(await deps.store.project_services(project_id))


def _own(services: list[ServiceSpec]) -> list[ServiceSpec]:
    return [s for s in services if (kind := _kind(s)) is None or not kind.in_observatory]


async def set_state(
    project_id: str, user: str, state: ProjectState, reason: str, deps: Deps
) -> bool:
    """Put the project in ``state`` (if allowed) and tell its log; say whether it changed."""
    if not await deps.store.set_state(project_id, state, reason):
        return False
    await state_entered(project_id, user, state, reason, deps)
    return True


async def state_entered(
    project_id: str, user: str, state: ProjectState, reason: str, deps: Deps
) -> None:
    """Tell the project's log that it entered ``state`` (the store says so already)."""
    await deps.emit(user, state_event(project_id, state, reason))


def state_event(project_id: str, state: ProjectState, reason: str) -> Event:
    """The log entry that says the project entered ``state`` (one id per state)."""
    return Event(
        event_id=event_id(project_id, state.value.lower()),
        project_id=project_id,
        source=MANAGER,
        level=Level.ERROR if state is ProjectState.FAILED else Level.INFO,
        text=STATE_TEXT.get(state, "Project is {state}: {reason}").format(
            state=state.value, reason=reason
        ),
        state=state,
    )


STATE_TEXT = {
    ProjectState.FAILED: "Project failed: {reason}",
    ProjectState.STOPPED: "Project {reason}; its services are undeployed",
    ProjectState.COMPLETED: "Project completed: every stage is done",
}


async def fail(
    project_id: str, user: str, reason: str, deps: Deps, culprit: ServiceSpec | None = None
) -> None:
    """Mark a project failed, stop its project services, and tell its observer why."""
    if not await deps.store.set_state(project_id, ProjectState.FAILED, reason):
        return
    for spec in await _project_services(project_id, deps):
        failed = culprit is not None and spec.id == culprit.id
        await undeploy(
            spec, deps, InstanceStatus.FAILED if failed else InstanceStatus.UNDEPLOYED, purge=False
        )
    await deps.emit(
        user,
        Event(
            event_id=event_id(project_id, "failed"),
            project_id=project_id,
            source=MANAGER,
            level=Level.ERROR,
            text=f"Project failed: {reason}",
            state=ProjectState.FAILED,
        ),
    )


async def undeploy_others(project_id: str, source: str, deps: Deps) -> None:
    """Undeploy the project's services except ``source`` (which reported its failure)."""
    async with deps.locks.hold(project_id):
        others = [s for s in await _project_services(project_id, deps) if s.name != source]
        await undeploy_all(others, deps, InstanceStatus.UNDEPLOYED, purge=False)


async def service_failed(spec: ServiceSpec, deps: Deps) -> None:
    """A project service's instance failed: its project fails, unless already final.

    Not for kinds whose failure another service judges (``ServiceKind.fails_project``).
    """
    kind = _kind(spec)
    if kind is not None and not kind.fails_project:
        return
    async with deps.locks.hold(spec.project_id):
        view = await deps.store.project(spec.project_id)
        if view is not None and not view.state.final:
            await fail(view.id, view.user, f"service {spec.name} failed", deps, culprit=spec)


async def stop_project(user: str, req: StopProject, deps: Deps) -> ProjectView:
    """Undeploy the project's services (not its observer: the log stays readable)."""
    view = await own_project(user, req.project_id, deps)
    async with deps.locks.hold(view.id):
        services = await _project_services(view.id, deps)
        await undeploy_all(services, deps, InstanceStatus.UNDEPLOYED, purge=False)
        await set_state(view.id, user, ProjectState.STOPPED, f"stopped by {user}", deps)
    return await own_project(user, req.project_id, deps)


async def delete_project(user: str, req: DeleteProject, deps: Deps) -> Deleted:
    """Remove the project and everything it created, its observer and log included.

    The user's observatory stays while other projects still use it.
    """
    view = await own_project(user, req.project_id, deps)
    async with deps.locks.hold(view.id):
        services = await deps.store.project_services(view.id)
        own = _own(services)
        await undeploy_all(own, deps, InstanceStatus.UNDEPLOYED, purge=True)
        rest = [s for s in services if s not in own]  # its observer, once the others are gone
        await undeploy_all(rest, deps, InstanceStatus.UNDEPLOYED, purge=True)
        await deps.store.delete_project(view.id)
    remaining = {a.id for a in await deps.store.apps(user)}
    removed = [a.id for a in view.apps if a.id not in remaining]
    return Deleted(
        project_id=view.id, removed_apps=removed, removed_services=[s.id for s in services]
    )


async def reconcile(deps: Deps, running: list[ServiceSpec]) -> int:
    """Stop what runs here but should not any more; count what was stopped.

    In a cluster any replica may answer a stop or a delete, while the project's services run
    in the process of the replica that made it (its host): the host finds them here, gone
    from the store's services to run, and stops them; the observer of a deleted project
    loses its log too.
    """
    wanted = {s.id for s in await deps.store.services_to_run(deps.host)}
    stopped = 0
    for spec in running:
        if spec.id in wanted:
            continue
        async with deps.locks.hold(spec.project_id):
            gone = await deps.store.owner_and_state(spec.project_id) is None
            log.info("stopping %s: %s elsewhere", spec.name, "deleted" if gone else "stopped")
            deps.liveness.forget(spec.name)
            await deps.runtime.undeploy(spec, purge=gone)
            stopped += 1
    return stopped


async def watch_running(deps: Deps) -> None:
    """After a restart: give every running service of this stack's projects a fresh deadline.

    Only its own: another replica's builders report to that replica, in its process, so
    watching them here would fail healthy projects at the deadline.
    """
    now = time.time()
    for spec in await deps.store.services_to_run(deps.host):
        if (kind := _kind(spec)) is not None and kind.watched:
            deps.liveness.deploy(spec.name, now)


async def check_deadlines(deps: Deps, now: float | None = None) -> int:
    """Fail the projects of services that never reported or stopped reporting; count them."""
    now = time.time() if now is None else now
    failed = 0
    late = {
        name: why
        for name in deps.liveness.deployed
        if (why := deps.liveness.overdue(name, deps.service_deadline, now)) is not None
    }
    if not late:
        return 0  # the usual case: no store read (it lists every service that should run)
    for spec in await deps.store.services_to_run(deps.host):
        why = late.get(spec.name)
        if why is None or (kind := _kind(spec)) is None or not kind.watched:
            continue
        async with deps.locks.hold(spec.project_id):
            view = await deps.store.project(spec.project_id)
            if view is None or view.state.final:
                deps.liveness.forget(spec.name)
                continue
            log.warning("project %s: service %s %s", view.id, spec.name, why)
            await fail(view.id, view.user, f"service {spec.name} {why}", deps, culprit=spec)
            failed += 1
    return failed

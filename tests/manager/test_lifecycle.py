"""Stop, delete, failure and the watchdog, without a broker."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import DeployError
from manager import handlers, lifecycle
from manager.deps import Deps, Liveness, RefusedError
from manager.store.sqlite import SqliteStore
from protocol.events import Event
from protocol.messages import CreateProject, DeleteProject, StopProject
from protocol.states import InstanceStatus, ProjectState
from services.spec import ServiceSpec
from slas import bundled_dir
from tests.manager.test_handlers import RecordingRuntime

SLA: dict[str, Any] = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())


@pytest.fixture
async def deps(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await SqliteStore.open(tmp_path / "m.db")
    events: list[Event] = []

    async def emit(_user: str, event: Event) -> None:
        events.append(event)

    d = Deps(store, RecordingRuntime(), emit, service_deadline=10)
    d.events = events  # type: ignore[attr-defined]
    yield d
    await store.close()


async def started(deps: Deps, rid: str = "req-00000001") -> str:
    req = CreateProject(request_id=rid, reply_to="c", sla=SLA, sla_name="s.json")
    view = await handlers.create_project("Admin", req, deps)
    await handlers.advance(view.id, deps)
    return view.id


async def test_stop_undeploys_project_services_but_keeps_the_observer(deps: Deps) -> None:
    pid = await started(deps)
    view = await lifecycle.stop_project(
        "Admin", StopProject(request_id="stop-0001", reply_to="c", project_id=pid), deps
    )
    assert view.state is ProjectState.STOPPED
    statuses = {s.kind: s.instances[0].status for s in view.services}
    assert statuses == {"observer": InstanceStatus.RUNNING, "builder": InstanceStatus.UNDEPLOYED}
    assert deps.runtime.undeployed == [("builder", False)]  # type: ignore[attr-defined]
    assert deps.events[-1].state is ProjectState.STOPPED  # type: ignore[attr-defined]
    again = await lifecycle.stop_project(
        "Admin", StopProject(request_id="stop-0002", reply_to="c", project_id=pid), deps
    )
    assert again.state is ProjectState.STOPPED
    assert [e.state for e in deps.events].count(ProjectState.STOPPED) == 1  # type: ignore[attr-defined]


async def test_delete_removes_everything_but_a_shared_observatory(deps: Deps) -> None:
    first, second = await started(deps, "req-00000001"), await started(deps, "req-00000002")
    gone = await lifecycle.delete_project(
        "Admin", DeleteProject(request_id="del-00001", reply_to="c", project_id=first), deps
    )
    assert gone.removed_apps == [first] and len(gone.removed_services) == 2
    assert ("observer", True) in deps.runtime.undeployed  # type: ignore[attr-defined]
    assert [a.name for a in await deps.store.apps("Admin")].count("observatory") == 1
    last = await lifecycle.delete_project(
        "Admin", DeleteProject(request_id="del-00002", reply_to="c", project_id=second), deps
    )
    assert len(last.removed_apps) == 2
    assert await deps.store.apps("Admin") == [] and await deps.store.services("Admin") == []


async def test_another_user_cannot_stop_or_delete(deps: Deps) -> None:
    pid = await started(deps)
    with pytest.raises(RefusedError):
        await lifecycle.stop_project(
            "eve", StopProject(request_id="stop-0001", reply_to="c", project_id=pid), deps
        )
    with pytest.raises(RefusedError):
        await lifecycle.delete_project(
            "eve", DeleteProject(request_id="del-00001", reply_to="c", project_id=pid), deps
        )
    view = await deps.store.project(pid)
    assert view is not None and view.state is ProjectState.BUILDING


async def test_a_builder_that_never_reports_fails_its_project_at_the_deadline(deps: Deps) -> None:
    pid = await started(deps)
    builder = next(s for s in await deps.store.project_services(pid) if s.kind == "builder")
    deployed = deps.liveness.deployed[builder.name]
    assert await lifecycle.check_deadlines(deps, now=deployed + 9) == 0
    assert await lifecycle.check_deadlines(deps, now=deployed + 11) == 1
    view = await deps.store.project(pid)
    assert view is not None and view.state is ProjectState.FAILED
    assert (
        view.state_reason == f"service {builder.name} never reported within 10s of its deployment"
    )
    status = {s.kind: s.instances[0].status for s in view.services}
    assert status["builder"] is InstanceStatus.FAILED
    text = deps.events[-1].text  # type: ignore[attr-defined]
    assert text.startswith("Project failed: service builder") and "never reported" in text


def test_liveness_tells_never_from_stopped_reporting() -> None:
    live = Liveness()
    live.deploy("b", now=100)
    assert live.overdue("b", 10, now=105) is None
    live.heard("b", now=105)
    assert live.overdue("b", 10, now=114) is None
    assert "stopped reporting" in (live.overdue("b", 10, now=116) or "")
    live.heard("unknown", now=1)
    assert live.overdue("unknown", 10, now=1000) is None


async def test_a_restarted_replica_watches_only_its_own_projects_builders(deps: Deps) -> None:
    deps.host = "stack-a"
    mine = await started(deps, "req-0000000a")
    deps.host = "stack-b"  # another replica made this one; its builder reports over there
    theirs = await started(deps, "req-0000000b")
    deps.host = "stack-a"
    deps.liveness = Liveness()  # stack-a restarts
    await lifecycle.watch_running(deps)
    assert await lifecycle.check_deadlines(deps, now=10**12) == 1  # far past every deadline
    states = {pid: (await deps.store.project(pid)).state for pid in (mine, theirs)}  # type: ignore[union-attr]
    assert states == {mine: ProjectState.FAILED, theirs: ProjectState.BUILDING}


async def test_the_host_stops_what_another_replica_stopped_or_deleted(deps: Deps) -> None:
    deps.host = "host"
    stopped = await started(deps, "req-00000011")
    deleted = await started(deps, "req-00000012")
    kept = await started(deps, "req-00000013")
    runtime: Any = deps.runtime
    running: list[Any] = list(runtime.deployed)  # the host runs 3 observers and 3 builders
    other = Deps(deps.store, RecordingRuntime(), deps.emit, host="other")  # another replica
    await lifecycle.stop_project(
        "Admin", StopProject(request_id="stop-0011", reply_to="c", project_id=stopped), other
    )
    await lifecycle.delete_project(
        "Admin", DeleteProject(request_id="del-00012", reply_to="c", project_id=deleted), other
    )
    assert runtime.undeployed == []  # the other replica could not reach the host's services
    assert await lifecycle.reconcile(deps, running) == 3
    # The stopped project's builder; the deleted project's builder and observer, with its log.
    assert sorted(runtime.undeployed) == [("builder", False), ("builder", True), ("observer", True)]
    assert await lifecycle.reconcile(deps, [s for s in running if s.project_id == kept]) == 0


class MeetingRuntime(RecordingRuntime):
    """Each undeploy ends only once all ``expected`` are in progress (sequential would hang)."""

    def __init__(self, expected: int, failing: str = "") -> None:
        super().__init__()
        self.expected, self.failing = expected, failing
        self.entered = 0
        self.all_in = asyncio.Event()

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        self.entered += 1
        if self.entered == self.expected:
            self.all_in.set()
        await self.all_in.wait()
        if spec.kind == self.failing:
            raise DeployError(f"{spec.name} would not stop")
        await super().undeploy(spec, purge=purge)


async def test_services_are_undeployed_at_once_and_every_one_is_tried(deps: Deps) -> None:
    pid = await started(deps)
    services = await deps.store.project_services(pid)
    assert len(services) == 2  # the observer and the builder
    deps.runtime = MeetingRuntime(len(services), failing="observer")
    async with asyncio.timeout(30):  # one after the other, the first would wait for ever
        with pytest.raises(DeployError, match="would not stop"):
            await lifecycle.undeploy_all(services, deps, InstanceStatus.UNDEPLOYED, purge=False)
    assert deps.runtime.undeployed == [("builder", False)]

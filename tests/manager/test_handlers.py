"""The manager's handlers without a broker: a real SQLite store, a recording runtime."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import DeployError, StoreError
from manager import events, handlers
from manager.deps import Deps, RefusedError
from manager.store.sqlite import SqliteStore
from protocol.events import Event
from protocol.messages import CreateProject, ListApps, ListProjects, ShowProject
from protocol.states import InstanceStatus, ProjectState
from services.spec import ServiceSpec
from slas import ProjectSLA, bundled_dir, parse_sla

SLA: dict[str, Any] = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())


class RecordingRuntime:
    def __init__(self, fail_kind: str = "") -> None:
        self.deployed: list[ServiceSpec] = []
        self.undeployed: list[tuple[str, bool]] = []
        self.fail_kind = fail_kind

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        if spec.kind == self.fail_kind:
            raise DeployError("no capacity")
        self.deployed.append(spec)
        return InstanceStatus.RUNNING

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        self.undeployed.append((spec.kind, purge))


@pytest.fixture
async def deps(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await SqliteStore.open(tmp_path / "m.db")
    events: list[tuple[str, Event]] = []

    async def emit(user: str, event: Event) -> None:
        events.append((user, event))

    d = Deps(store, RecordingRuntime(), emit)
    d.events = events  # type: ignore[attr-defined]
    yield d
    await store.close()


def request(rid: str = "req-00000001", **sla: Any) -> CreateProject:
    return CreateProject(
        request_id=rid, reply_to="cli-1", sla={**SLA, **sla}, sla_name="mnist_sklearn_small.json"
    )


async def test_a_project_gets_observatory_project_app_and_running_observer(deps: Deps) -> None:
    view = await handlers.create_project("Admin", request(), deps)
    assert view.state is ProjectState.STARTING
    assert [a.name for a in view.apps] == ["observatory", view.name]
    assert view.name.startswith("proj") and len(view.name) == 16
    (observer,) = view.services
    assert observer.name == "observ" + __import__("core.ids").ids.short_hash(view.id)
    assert observer.app_name == "observatory"
    assert observer.instances[0].status is InstanceStatus.RUNNING


async def test_the_answer_to_a_new_project_is_what_the_store_now_holds(deps: Deps) -> None:
    view = await handlers.create_project("Admin", request(), deps)
    assert view == await deps.store.project(view.id)  # built in memory, not read back
    again = await handlers.create_project("Admin", request(view.request_id), deps)
    assert again == view


@pytest.mark.parametrize("known", [False, True])
async def test_advance_with_the_answered_view_checks_the_state_again(
    deps: Deps, known: bool
) -> None:
    view = await handlers.create_project("Admin", request(), deps)
    await deps.store.set_state(view.id, ProjectState.STOPPED, "stopped meanwhile")
    await handlers.advance(view.id, deps, view if known else None)
    after = await deps.store.project(view.id)
    assert after is not None and [s.kind for s in after.services] == ["observer"]


async def test_advance_creates_and_announces_the_builder(deps: Deps) -> None:
    view = await handlers.create_project("Admin", request(), deps)
    await handlers.advance(view.id, deps)
    after = await deps.store.project(view.id)
    assert after is not None
    assert [s.kind for s in after.services] == ["observer", "builder"]
    builder = after.services[1]
    assert builder.app_id == view.id and builder.name == "builder" + view.services[0].name[6:]
    texts = [e.text for _, e in deps.events]  # type: ignore[attr-defined]
    # The stage sets its state (BUILDING) after announcing its builder.
    assert texts == ["New Builder service created & deployed", "Project is BUILDING: stage build"]
    await handlers.advance(view.id, deps)  # repeating is harmless
    assert len(deps.events) == 2  # type: ignore[attr-defined]


class Log:
    """A project log in this process (``Deps.queue``): events queued, stored when told."""

    def __init__(self) -> None:
        self.queued: list[tuple[Event, asyncio.Future[None]]] = []
        self.stored: list[str] = []
        self._more = asyncio.Event()

    def queue(self, _user: str, event: Event) -> asyncio.Future[None]:
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queued.append((event, stored))
        self._more.set()
        return stored

    async def wait_queued(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.queued) < count:
                self._more.clear()
                await self._more.wait()

    def store(self, failure: Exception | None = None) -> None:
        """Store (or fail) every event queued so far, in order, as one batch would."""
        for event, stored in self.queued:
            if failure is not None:
                stored.set_exception(failure)
                continue
            if event.event_id not in self.stored:  # the log keeps an event id once
                self.stored.append(event.event_id)
            stored.set_result(None)
        self.queued.clear()


async def test_a_stage_is_deployed_only_once_its_entries_queued_together_are_stored(
    deps: Deps,
) -> None:
    log = Log()
    deps.queue = log.queue
    view = await handlers.create_project("Admin", request(), deps)
    advancing = asyncio.create_task(handlers.advance(view.id, deps, view))
    await log.wait_queued(2)
    # Both queued at once, the state entry last, none emitted one at a time.
    texts = [e.text for e, _ in log.queued]
    assert texts == ["New Builder service created & deployed", "Project is BUILDING: stage build"]
    assert deps.events == []  # type: ignore[attr-defined]
    for _ in range(5):
        await asyncio.sleep(0)
    now = await deps.store.progress(view.id)
    assert now is not None and now.state is ProjectState.BUILDING and not now.ready
    log.store()
    await advancing
    now = await deps.store.progress(view.id)
    assert now is not None and (now.stage, now.ready) == ("build", True)


async def test_entries_the_log_could_not_store_are_told_again_when_the_stage_is_entered_again(
    deps: Deps,
) -> None:
    log = Log()
    deps.queue = log.queue
    view = await handlers.create_project("Admin", request(), deps)
    advancing = asyncio.create_task(handlers.advance(view.id, deps, view))
    await log.wait_queued(2)
    ids = [e.event_id for e, _ in log.queued]
    log.store(StoreError("disk full"))
    with pytest.raises(StoreError, match="disk full"):
        await advancing
    now = await deps.store.progress(view.id)
    assert now is not None and now.state is ProjectState.BUILDING and not now.ready
    # As after a crash there: the start goes on from where the store stands (the state is
    # entered already), and the log hears of the builder and the state again, once each.
    assert await deps.store.unfinished_projects() == [view.id]
    advancing = asyncio.create_task(handlers.advance(view.id, deps))
    await log.wait_queued(2)
    log.store()
    await advancing
    assert log.stored == ids
    after = await deps.store.project(view.id)
    assert after is not None and [s.kind for s in after.services] == ["observer", "builder"]
    now = await deps.store.progress(view.id)
    assert now is not None and now.ready


class ObserverRuntime(RecordingRuntime):
    """Gives the observer another status than expected, or fails it without a DeployError."""

    def __init__(self, status: InstanceStatus | None) -> None:
        super().__init__()
        self.status = status

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        if spec.kind == "observer" and self.status is None:
            raise StoreError("the observer's log cannot be written")
        await super().deploy(spec)
        return self.status or InstanceStatus.RUNNING


async def test_the_observer_status_written_with_the_project_is_corrected_if_it_differs(
    deps: Deps,
) -> None:
    deps.runtime = ObserverRuntime(InstanceStatus.CREATING)  # as Oakestra may answer
    view = await handlers.create_project("Admin", request(), deps)
    assert [s.instances[0].status for s in view.services] == [InstanceStatus.CREATING]
    assert view == await deps.store.project(view.id)


async def test_an_observer_deploy_cut_short_is_left_requested_and_deployed_on_a_repeat(
    deps: Deps,
) -> None:
    deps.runtime = ObserverRuntime(None)
    with pytest.raises(StoreError):
        await handlers.create_project("Admin", request("cut-0001"), deps)
    (made,) = await deps.store.projects("Admin")
    view = await deps.store.project(made.id)
    assert view is not None
    assert [s.instances[0].status for s in view.services] == [InstanceStatus.REQUESTED]
    deps.runtime = ObserverRuntime(InstanceStatus.RUNNING)
    again = await handlers.create_project("Admin", request("cut-0001"), deps)
    assert again.id == made.id
    assert [s.instances[0].status for s in again.services] == [InstanceStatus.RUNNING]


async def test_a_start_validates_its_sla_once_and_a_repeat_keeps_the_first(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counted(raw: dict[str, Any], source: str) -> ProjectSLA:
        calls.append(source)
        return parse_sla(raw, source)

    monkeypatch.setattr(handlers, "parse_sla", counted)
    view = await handlers.create_project("Admin", request(), deps)
    await handlers.advance(view.id, deps, view)
    assert len(calls) == 1  # the request's; the stage used the same validated SLA
    first = deps.slas[view.id]
    # A repeated request id with another SLA gets the project made; its SLA stays the first.
    await handlers.create_project("Admin", request(view.request_id, verbose=False), deps)
    assert deps.slas[view.id] is first
    deps.slas.clear()  # another process, or forgotten: read from the store once, then kept
    now = await deps.store.progress(view.id)
    assert now is not None
    assert handlers.project_sla(now, deps) == first == handlers.project_sla(now, deps)
    assert len(calls) == 3


async def test_a_repeated_request_id_returns_the_same_project(deps: Deps) -> None:
    first = await handlers.create_project("Admin", request("same-0001"), deps)
    again = await handlers.create_project("Admin", request("same-0001"), deps)
    assert first.id == again.id
    assert len(await deps.store.projects("Admin")) == 1


async def test_concurrent_first_requests_make_one_observatory(deps: Deps) -> None:
    await asyncio.gather(
        *(handlers.create_project("Admin", request(f"conc-{i:04d}"), deps) for i in range(8))
    )
    apps = (
        await handlers.list_apps("Admin", ListApps(request_id="list-0001", reply_to="c"), deps)
    ).apps
    assert [a.name for a in apps].count("observatory") == 1
    assert next(a for a in apps if a.name == "observatory").services == 8


async def test_invalid_sla_is_refused_and_creates_nothing(deps: Deps) -> None:
    with pytest.raises(RefusedError) as caught:
        await handlers.create_project(
            "Admin",
            request(training_configuration={"min_available_clients": 1, "min_fit_clients": 2}),
            deps,
        )
    assert caught.value.code == "invalid_sla"
    assert any("min_fit_clients" in d for d in caught.value.details)
    assert await deps.store.apps("Admin") == []


async def test_customer_id_must_be_the_topic_user(deps: Deps) -> None:
    with pytest.raises(
        RefusedError, match="customerID 'Admin' is not the requesting user 'mallory'"
    ):
        await handlers.create_project("mallory", request(), deps)
    assert await deps.store.apps("mallory") == []


async def test_a_failed_observer_deploy_leaves_nothing_behind(deps: Deps) -> None:
    deps.runtime = RecordingRuntime(fail_kind="observer")
    with pytest.raises(RefusedError, match="could not be deployed"):
        await handlers.create_project("Admin", request(), deps)
    assert await deps.store.apps("Admin") == []
    assert await deps.store.services("Admin") == []


async def test_a_failed_builder_deploy_fails_the_project_with_a_reason(deps: Deps) -> None:
    view = await handlers.create_project("Admin", request(), deps)
    deps.runtime = RecordingRuntime(fail_kind="builder")
    await handlers.advance(view.id, deps)
    after = await deps.store.project(view.id)
    assert after is not None and after.state is ProjectState.FAILED
    assert "builder service could not be deployed" in after.state_reason


async def test_state_events_move_the_project_and_illegal_moves_are_ignored(deps: Deps) -> None:
    view = await handlers.create_project("Admin", request(), deps)
    building = Event(project_id=view.id, source="b", text="x", state=ProjectState.BUILDING)
    await events.on_event("Admin", view.id, building, deps)
    starting = Event(project_id=view.id, source="b", text="x", state=ProjectState.STARTING)
    await events.on_event("Admin", view.id, starting, deps)
    await events.on_event(
        "other",
        view.id,
        Event(project_id=view.id, source="b", text="x", state=ProjectState.FAILED),
        deps,
    )
    after = await deps.store.project(view.id)
    assert after is not None and after.state is ProjectState.BUILDING


async def test_another_users_project_is_not_found(deps: Deps) -> None:
    view = await handlers.create_project("Admin", request(), deps)
    with pytest.raises(RefusedError) as caught:
        await handlers.show_project(
            "eve", ShowProject(request_id="show-0001", reply_to="c", project_id=view.id), deps
        )
    assert caught.value.code == "not_found"


async def test_list_projects_answers_the_newest_500_and_the_total(deps: Deps) -> None:
    for i in range(505):
        await deps.store.create_project("Admin", f"many-{i:05d}", SLA, "s.json", {})
    listed = await handlers.list_projects(
        "Admin", ListProjects(request_id="list-0001", reply_to="c"), deps
    )
    assert listed.total == 505 and len(listed.projects) == 500
    assert listed.projects[-1].request_id == "many-00504"

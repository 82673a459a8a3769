"""One behavioural contract for every manager ``Store`` backend: SQLite and MongoDB.

MongoDB is the server in ``FLOPS_TEST_MONGO_URL`` if set, else an nx-27017 (a MongoDB-wire
server on SQLite) that this module starts on a free port. That leg never skips: a server
that cannot start fails the tests with its output.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from broker.server import free_port
from core import ids
from core.errors import StoreError
from manager.store.interface import NewProject, NewService, Store
from manager.store.mongo import MongoStore
from manager.store.sqlite import SqliteStore
from protocol.states import TRANSITIONS, InstanceStatus, ProjectState
from services.kinds import BUILDER, OBSERVER
from services.spec import ServiceSpec

SLA: dict[str, Any] = {"customerID": "Admin", "a.b": 1, "$c": [1, 2.5, None], "d": {"e": True}}
RUNNABLE = {"REQUESTED", "CREATING", "CREATED", "RUNNING"}


@pytest.fixture
def mongo_db(mongo_url: str) -> Iterator[tuple[str, str]]:
    """A fresh database name on the server (dropped afterwards)."""
    name = f"flops_test_{uuid.uuid4().hex[:16]}"
    yield mongo_url, name
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    with client:
        client.drop_database(name)


Opener = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "mongo"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores of one backend on one shared storage, as several managers would."""
    opened: list[Store] = []
    mongo = request.getfixturevalue("mongo_db") if request.param == "mongo" else None

    async def open_one() -> Store:
        if mongo is None:
            opened.append(await SqliteStore.open(tmp_path / "manager.db"))
        else:
            opened.append(await MongoStore.open(*mongo))
        return opened[-1]

    yield open_one
    for one in opened:
        await one.close()


@pytest.fixture
async def store(open_store: Opener) -> Store:
    """Each backend in turn, empty."""
    return await open_store()


async def new_project(store: Store, user: str = "Admin", rid: str = "") -> NewProject:
    rid = rid or f"req-{uuid.uuid4().hex[:16]}"
    return await store.create_project(user, rid, SLA, "sla.json", {"observe": 1})


async def observatory_services(store: Store, user: str) -> int | None:
    found = [a.services for a in await store.apps(user) if a.name == ids.OBSERVATORY]
    assert len(found) <= 1
    return found[0] if found else None


# ---------------------------------------------------------------- creating projects


async def test_create_project_makes_observatory_project_app_and_requested_observer(
    store: Store,
) -> None:
    new = await new_project(store, rid="req-00000001")
    view = new.project
    assert view.state is ProjectState.STARTING
    assert (view.user, view.request_id, view.sla_name) == ("Admin", "req-00000001", "sla.json")
    assert view.name == ids.project_app_name("req-00000001")
    assert view.created_at == view.updated_at
    assert [(a.name, a.services) for a in view.apps] == [(ids.OBSERVATORY, 1), (view.name, 0)]
    (observer,) = view.services
    assert (observer.name, observer.kind) == (OBSERVER.name_for(view.id), "observer")
    assert (observer.app_name, observer.app_id) == (ids.OBSERVATORY, view.apps[0].id)
    assert observer.instances[0].status is InstanceStatus.REQUESTED
    assert new.observer.id == observer.id
    assert new.observer.config == {"observe": 1}
    assert (new.observer.user, new.observer.project_id) == ("Admin", view.id)
    progress = await store.progress(view.id)
    assert progress is not None and (progress.stage, progress.ready) == ("", False)
    assert (progress.user, progress.state, progress.sla, progress.outputs) == (
        "Admin",
        ProjectState.STARTING,
        SLA,
        {},
    )


@pytest.mark.timeout(60)
async def test_concurrent_first_projects_of_a_user_share_exactly_one_observatory(
    store: Store,
) -> None:
    made = await asyncio.gather(*(new_project(store) for _ in range(8)))
    assert len({n.observer.app_id for n in made}) == 1
    assert await observatory_services(store, "Admin") == 8
    assert len(await store.projects("Admin")) == 8
    assert len(await store.apps("Admin")) == 9


async def test_repeated_request_id_raises_store_error_and_leaves_one_project(
    store: Store,
) -> None:
    await new_project(store, rid="req-00000002")
    with pytest.raises(StoreError):
        await new_project(store, rid="req-00000002")
    assert len(await store.projects("Admin")) == 1
    assert [a.services for a in await store.apps("Admin")] == [1, 0]
    assert len(await store.services("Admin")) == 1


@pytest.mark.timeout(60)
async def test_racing_requests_with_one_id_make_one_project_and_one_error(store: Store) -> None:
    results = await asyncio.gather(
        *(new_project(store, rid="req-00000003") for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, NewProject) for r in results) == 1
    assert sum(isinstance(r, StoreError) for r in results) == 3
    assert len(await store.projects("Admin")) == 1
    assert await observatory_services(store, "Admin") == 1
    assert len(await store.services("Admin")) == 1


async def test_users_are_independent_in_request_ids_and_observatories(store: Store) -> None:
    a = await new_project(store, "alice", "req-00000004")
    b = await new_project(store, "bob", "req-00000004")
    assert a.project.id != b.project.id
    assert a.observer.app_id != b.observer.app_id
    assert await observatory_services(store, "alice") == 1
    assert await observatory_services(store, "bob") == 1


async def test_project_by_request_finds_only_that_users_request(store: Store) -> None:
    new = await new_project(store, "alice", "req-00000005")
    found = await store.project_by_request("alice", "req-00000005")
    assert found == await store.project(new.project.id)
    assert found is not None and [s.name for s in found.services] == [new.observer.name]
    assert await store.project_by_request("bob", "req-00000005") is None
    assert await store.project_by_request("alice", "req-99999999") is None


async def test_progress_returns_the_sla_exactly_and_unknown_projects_have_none(
    store: Store,
) -> None:
    new = await new_project(store)
    progress = await store.progress(new.project.id)
    assert progress is not None and progress.sla == SLA and progress.sla_name == "sla.json"
    assert await store.progress(ids.new_object_id()) is None


async def test_the_observer_may_be_made_in_the_status_its_deployment_is_expected_to_give(
    store: Store,
) -> None:
    new = await store.create_project(
        "Admin", "req-00000002", SLA, "sla.json", {}, "", InstanceStatus.RUNNING
    )
    assert [s.instances[0].status for s in new.project.services] == [InstanceStatus.RUNNING]
    assert new.project == await store.project(new.project.id)  # what the store holds


# ---------------------------------------------------------------- services


async def add_service(
    store: Store, pid: str, kind: str, name: str, in_observatory: bool, config: dict[str, Any]
) -> ServiceSpec:
    (spec,) = await store.add_services(pid, [NewService(kind, name, in_observatory, config)])
    return spec


async def test_add_services_adds_several_at_once_in_order(store: Store) -> None:
    pid = (await new_project(store)).project.id
    made = await store.add_services(
        pid, [NewService("builder", f"b{i}", False, {"i": i}) for i in range(3)]
    )
    assert [(s.name, s.config) for s in made] == [(f"b{i}", {"i": i}) for i in range(3)]
    assert [s.name for s in await store.project_services(pid)][1:] == ["b0", "b1", "b2"]


async def test_add_service_is_idempotent_by_name(store: Store) -> None:
    pid = (await new_project(store)).project.id
    first = await add_service(store, pid, "builder", "builder1", False, {"repo": "a"})
    again = await add_service(store, pid, "builder", "builder1", False, {"repo": "other"})
    assert again == first
    assert first.config == {"repo": "a"}
    assert [s.name for s in await store.project_services(pid)] == [
        OBSERVER.name_for(pid),
        "builder1",
    ]


async def test_add_service_goes_to_the_project_app_or_the_observatory(store: Store) -> None:
    new = await new_project(store)
    pid = new.project.id
    own = await add_service(store, pid, "builder", "b1", False, {})
    shared = await add_service(store, pid, "observer", "o2", True, {})
    assert own.app_id == pid
    assert shared.app_id == new.observer.app_id
    assert await observatory_services(store, "Admin") == 2


async def test_add_service_to_an_unknown_project_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        await add_service(store, ids.new_object_id(), "builder", "b", False, {})


async def test_set_instance_status_shows_in_every_view(store: Store) -> None:
    new = await new_project(store)
    await store.set_instance_status(new.observer.id, InstanceStatus.RUNNING)
    view = await store.project(new.project.id)
    assert view is not None and view.services[0].instances[0].status is InstanceStatus.RUNNING
    (listed,) = await store.services("Admin")
    assert listed.instances[0].status is InstanceStatus.RUNNING


async def test_services_to_run_are_the_runnable_ones_of_everyone_in_id_order(
    store: Store,
) -> None:
    alice, bob = await new_project(store, "alice"), await new_project(store, "bob")
    for status in InstanceStatus:
        spec = await add_service(store, alice.project.id, "builder", f"s-{status}", False, {})
        await store.set_instance_status(spec.id, status)
    to_run = await store.services_to_run()
    assert [s.id for s in to_run] == sorted(s.id for s in to_run)
    runnable = {f"s-{status}" for status in RUNNABLE}
    assert {s.name for s in to_run} == {alice.observer.name, bob.observer.name} | runnable
    alices = await store.services_to_run(project_id=alice.project.id)
    assert {s.name for s in alices} == {alice.observer.name} | runnable
    assert [s.name for s in await store.services_to_run(project_id=bob.project.id)] == [
        bob.observer.name
    ]


async def test_project_services_are_the_projects_specs_oldest_first(store: Store) -> None:
    new = await new_project(store)
    pid = new.project.id
    builder = await add_service(store, pid, "builder", BUILDER.name_for(pid), False, {"r": [1]})
    await new_project(store)
    assert await store.project_services(pid) == [new.observer, builder]
    assert await store.project_services(ids.new_object_id()) == []


# ---------------------------------------------------------------- state and stages


def reachable_states() -> list[list[ProjectState]]:
    """A path from STARTING to every state TRANSITIONS can reach."""
    paths = {ProjectState.STARTING: [ProjectState.STARTING]}
    frontier = [ProjectState.STARTING]
    while frontier:
        state = frontier.pop()
        for nxt in sorted(TRANSITIONS[state]):
            if nxt not in paths:
                paths[nxt] = [*paths[state], nxt]
                frontier.append(nxt)
    return list(paths.values())


async def test_set_state_follows_transitions_and_refuses_every_other_change(
    store: Store,
) -> None:
    for path in reachable_states():
        for target in ProjectState:
            pid = (await new_project(store)).project.id
            for step in path[1:]:
                assert await store.set_state(pid, step, f"to {step}")
            changed = await store.set_state(pid, target, "why")
            assert changed == (target in TRANSITIONS[path[-1]]), (path, target)
            view = await store.project(pid)
            assert view is not None
            assert view.state is (target if changed else path[-1])
            if changed:
                assert view.state_reason == "why" and view.updated_at >= view.created_at
    assert not await store.set_state(ids.new_object_id(), ProjectState.FAILED, "nobody")


async def test_a_deployed_stage_records_its_statuses_and_is_ready(store: Store) -> None:
    a, b = await new_project(store), await new_project(store)
    await store.stage_deployed(a.project.id, "build", {a.observer.id: InstanceStatus.RUNNING})
    now, other = await store.progress(a.project.id), await store.progress(b.project.id)
    assert now is not None and other is not None
    assert (now.stage, now.ready, other.stage, other.ready) == ("build", True, "", False)
    view, other_view = await store.project(a.project.id), await store.project(b.project.id)
    assert view is not None and other_view is not None
    assert [s.instances[0].status for s in view.services] == [InstanceStatus.RUNNING]
    assert [s.instances[0].status for s in other_view.services] == [InstanceStatus.REQUESTED]


async def test_a_deployed_stage_enters_its_state_in_the_same_write_if_allowed(
    store: Store,
) -> None:
    pid = (await new_project(store)).project.id
    assert await store.stage_deployed(pid, "build", {}, (ProjectState.BUILDING, "stage build"))
    view, now = await store.project(pid), await store.progress(pid)
    assert view is not None and now is not None
    assert (view.state, view.state_reason, now.stage, now.ready) == (
        ProjectState.BUILDING,
        "stage build",
        "build",
        True,
    )
    await store.set_state(pid, ProjectState.FAILED, "broken")
    # Not allowed from FAILED: the stage is still recorded, the state stays.
    assert not await store.stage_deployed(pid, "train", {}, (ProjectState.TRAINING, "x"))
    now = await store.progress(pid)
    assert now is not None and (now.state, now.stage, now.ready) == (
        ProjectState.FAILED,
        "train",
        True,
    )
    assert not await store.stage_deployed(pid, "train", {})


async def test_entering_a_stage_adds_its_services_and_its_state_in_one_write(
    store: Store,
) -> None:
    pid = (await new_project(store)).project.id
    wants = [NewService("builder", "b1", False, {"i": 1}), NewService("observer", "o2", True)]
    entered = await store.enter_stage(pid, wants, (ProjectState.BUILDING, "stage build"))
    assert entered.in_state
    assert [(s.name, s.config) for s in entered.services] == [("b1", {"i": 1}), ("o2", {})]
    view, now = await store.project(pid), await store.progress(pid)
    assert view is not None and now is not None
    assert (view.state, view.state_reason) == (ProjectState.BUILDING, "stage build")
    assert (now.stage, now.ready) == ("", False)  # not ready before stage_deployed
    by_name = {s.name: s for s in view.services}
    assert by_name["b1"].app_id == pid and by_name["o2"].app_name == ids.OBSERVATORY
    assert by_name["b1"].instances[0].status is InstanceStatus.REQUESTED
    assert await observatory_services(store, "Admin") == 2


async def test_a_stage_entered_again_finds_its_services_and_its_state(store: Store) -> None:
    pid = (await new_project(store)).project.id
    wants = [NewService("builder", "b1", False, {"i": 1})]
    first = await store.enter_stage(pid, wants, (ProjectState.BUILDING, "stage build"))
    # After a crash: the same services, and the project already in the state.
    again = await store.enter_stage(pid, wants, (ProjectState.BUILDING, "stage build"))
    assert again == first
    assert len(await store.project_services(pid)) == 2
    # A state the project may not enter (FAILED is final) is neither entered nor claimed.
    await store.set_state(pid, ProjectState.FAILED, "broken")
    refused = await store.enter_stage(pid, [], (ProjectState.TRAINING, "stage train"))
    assert (refused.services, refused.in_state) == ([], False)
    assert (await store.enter_stage(pid, [])).in_state is False
    with pytest.raises(StoreError):
        await store.enter_stage(ids.new_object_id(), wants)


async def test_a_stage_ends_once_with_its_output_and_the_last_leaves_nothing_to_do(
    store: Store,
) -> None:
    pid = (await new_project(store)).project.id
    assert not await store.end_stage(pid, "build", "train", {"x": 1})  # not ready yet
    await store.stage_deployed(pid, "build", {})
    assert await store.end_stage(pid, "build", "train", {"images": {"a": "b$.c"}})
    assert not await store.end_stage(pid, "build", "train", {"again": True})
    now = await store.progress(pid)
    assert now is not None and (now.stage, now.ready) == ("train", False)
    await store.stage_deployed(pid, "train", {})
    assert await store.end_stage(pid, "train", "", {"loss": 0.5})
    now = await store.progress(pid)
    assert now is not None and (now.stage, now.ready) == ("", True)
    assert now.outputs == {"build": {"images": {"a": "b$.c"}}, "train": {"loss": 0.5}}
    assert pid not in await store.unfinished_projects()
    # an ended stage's output replaced (a service that reports it again); never a new one
    assert await store.refresh_output(pid, "train", {"url": "http://h:2"})
    assert not await store.refresh_output(pid, "serve", {"url": "x"})
    assert not await store.refresh_output(ids.new_object_id(), "train", {"url": "x"})
    now = await store.progress(pid)
    assert now is not None and now.outputs["train"] == {"url": "http://h:2"}
    assert (now.stage, now.ready) == ("", True)


async def test_unfinished_projects_are_those_with_a_stage_to_deploy_oldest_first(
    store: Store,
) -> None:
    made = [await new_project(store, user) for user in ("alice", "bob", "alice", "carol")]
    await store.stage_deployed(made[1].project.id, "build", {})
    await store.set_state(made[2].project.id, ProjectState.FAILED, "")
    expected = [made[0].project.id, made[3].project.id]
    assert await store.unfinished_projects() == expected


async def test_the_first_answer_to_a_request_id_is_kept_per_user(store: Store) -> None:
    assert await store.answer_for("alice", "req-00000006") is None
    await store.remember_answer("alice", "req-00000006", {"ok": True, "n": [1]})
    await store.remember_answer("alice", "req-00000006", {"ok": False})
    assert await store.answer_for("alice", "req-00000006") == {"ok": True, "n": [1]}
    assert await store.answer_for("bob", "req-00000006") is None


# ---------------------------------------------------------------- views


async def test_projects_lists_the_users_projects_oldest_first_without_details(
    store: Store,
) -> None:
    made = [await new_project(store, user) for user in ("alice", "bob", "alice")]
    listed = await store.projects("alice")
    assert [p.id for p in listed] == [made[0].project.id, made[2].project.id]
    assert all(p.apps == [] and p.services == [] for p in listed)
    assert listed[0] == made[0].project.model_copy(update={"apps": [], "services": []})
    assert await store.projects("nobody") == []


async def test_live_projects_counts_the_users_projects_that_are_not_final(store: Store) -> None:
    made = [(await new_project(store, user)).project.id for user in ("alice",) * 4 + ("bob",)]
    await store.set_state(made[0], ProjectState.BUILDING, "building")
    await store.set_state(made[1], ProjectState.FAILED, "failed")
    await store.set_state(made[2], ProjectState.STOPPED, "stopped")
    assert await store.live_projects("alice") == 2  # STARTING and BUILDING
    assert await store.live_projects("bob") == 1
    assert await store.live_projects("nobody") == 0


async def test_apps_are_in_id_order_with_their_service_counts(store: Store) -> None:
    a, b = await new_project(store), await new_project(store)
    await add_service(store, b.project.id, "builder", "b1", False, {})
    await new_project(store, "bob")
    apps = await store.apps("Admin")
    assert [a.id for a in apps] == sorted(a.id for a in apps)
    assert [(x.name, x.services, x.user) for x in apps] == [
        (ids.OBSERVATORY, 2, "Admin"),
        (a.project.name, 0, "Admin"),
        (b.project.name, 1, "Admin"),
    ]


async def test_services_lists_the_users_services_in_id_order_with_app_names(
    store: Store,
) -> None:
    a, b = await new_project(store), await new_project(store)
    builder = await add_service(store, a.project.id, "builder", "b1", False, {})
    await new_project(store, "bob")
    listed = await store.services("Admin")
    assert [s.id for s in listed] == [a.observer.id, b.observer.id, builder.id]
    assert [s.app_name for s in listed] == [ids.OBSERVATORY, ids.OBSERVATORY, a.project.name]
    assert [s.project_id for s in listed] == [a.project.id, b.project.id, a.project.id]


async def test_project_view_has_its_own_apps_and_services_oldest_first(store: Store) -> None:
    a = await new_project(store)
    await new_project(store)
    builder = await add_service(store, a.project.id, "builder", "b1", False, {})
    view = await store.project(a.project.id)
    assert view is not None
    assert [x.name for x in view.apps] == [ids.OBSERVATORY, a.project.name]
    assert [x.services for x in view.apps] == [2, 1]
    assert [s.id for s in view.services] == [a.observer.id, builder.id]
    assert await store.project(ids.new_object_id()) is None


# ---------------------------------------------------------------- deleting


async def test_delete_project_removes_its_app_and_services_and_keeps_a_used_observatory(
    store: Store,
) -> None:
    a, b = await new_project(store), await new_project(store)
    await add_service(store, a.project.id, "builder", "b1", False, {})
    await add_service(store, a.project.id, "observer", "o2", True, {})
    await store.delete_project(a.project.id)
    assert await store.project(a.project.id) is None
    assert await store.project_services(a.project.id) == []
    assert [p.id for p in await store.projects("Admin")] == [b.project.id]
    assert [(x.name, x.services) for x in await store.apps("Admin")] == [
        (ids.OBSERVATORY, 1),
        (b.project.name, 0),
    ]
    assert [s.id for s in await store.services("Admin")] == [b.observer.id]
    assert await store.unfinished_projects() == [b.project.id]


async def test_deleting_the_last_project_removes_the_observatory(store: Store) -> None:
    a = await new_project(store)
    other = await new_project(store, "bob")
    await store.delete_project(a.project.id)
    assert await store.apps("Admin") == []
    assert await store.services("Admin") == []
    assert await observatory_services(store, "bob") == 1
    await store.delete_project(a.project.id)  # deleting again changes nothing
    assert [p.id for p in await store.projects("bob")] == [other.project.id]
    again = await new_project(store)
    assert await observatory_services(store, "Admin") == 1
    assert again.observer.app_id != a.observer.app_id


@pytest.mark.timeout(60)
async def test_concurrent_creates_and_deletes_keep_the_observatory_exactly_while_used(
    store: Store,
) -> None:
    old = await new_project(store)
    made = await asyncio.gather(
        store.delete_project(old.project.id), *(new_project(store) for _ in range(4))
    )
    fresh = [n for n in made if isinstance(n, NewProject)]
    assert await observatory_services(store, "Admin") == 4
    listed = await store.services("Admin")
    assert sorted(s.id for s in listed) == sorted(n.observer.id for n in fresh)
    assert {s.app_name for s in listed} == {ids.OBSERVATORY}
    await asyncio.gather(*(store.delete_project(n.project.id) for n in fresh))
    assert await store.apps("Admin") == []


@pytest.mark.timeout(60)
async def test_managers_sharing_one_database_make_one_observatory_and_one_project_per_request(
    open_store: Opener,
) -> None:
    managers = [await open_store() for _ in range(3)]
    rids = [f"req-shared{i:04d}" for i in range(4)]
    results = await asyncio.gather(
        *(new_project(m, rid=rid) for m in managers for rid in rids), return_exceptions=True
    )
    assert sum(isinstance(r, NewProject) for r in results) == 4
    assert all(isinstance(r, NewProject | StoreError) for r in results)
    assert sorted(p.request_id for p in await managers[0].projects("Admin")) == rids
    assert await observatory_services(managers[1], "Admin") == 4


# ---------------------------------------------------------------- MongoDB only


async def test_mongo_open_on_an_unreachable_server_raises_store_error() -> None:
    url = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    with pytest.raises(StoreError, match="cannot open the manager database"):
        await MongoStore.open(url, "flops")


@pytest.fixture
async def mongo(
    mongo_db: tuple[str, str],
) -> AsyncIterator[tuple[MongoStore, AsyncDatabase[dict[str, Any]]]]:
    """A MongoStore and, beside it, the raw database it uses."""
    store = await MongoStore.open(*mongo_db)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_db[0])
    yield store, client[mongo_db[1]]
    await client.close()
    await store.close()


async def test_mongo_indexes_refuse_duplicates_written_past_the_store(
    mongo: tuple[MongoStore, AsyncDatabase[dict[str, Any]]],
) -> None:
    store, db = mongo
    new = await new_project(store)
    for collection, doc in [
        ("applications", {"user": "Admin", "name": ids.OBSERVATORY}),
        ("projects", {"user": "Admin", "request_id": new.project.request_id}),
        ("services", {"app_id": new.observer.app_id, "name": new.observer.name}),
    ]:
        with pytest.raises(DuplicateKeyError):
            await db[collection].insert_one({"_id": ids.new_object_id(), **doc})


async def test_mongo_create_failing_at_its_last_write_undoes_the_earlier_ones(
    mongo: tuple[MongoStore, AsyncDatabase[dict[str, Any]]],
) -> None:
    store, db = mongo
    stray = {"_id": ids.new_object_id(), "user": "Admin", "request_id": "req-00000009"}
    await db["projects"].insert_one(stray)  # the project, written last, will collide
    with pytest.raises(StoreError):
        await new_project(store, rid="req-00000009")
    assert (await store.apps("Admin"), await store.services("Admin")) == ([], [])
    kept = await new_project(store)
    with pytest.raises(StoreError):
        await new_project(store, rid="req-00000009")
    assert [(a.name, a.services) for a in await store.apps("Admin")] == [
        (ids.OBSERVATORY, 1),
        (kept.project.name, 0),
    ]
    await store.delete_project(kept.project.id)  # the observatory's count was restored exactly
    assert await store.apps("Admin") == []


async def test_mongo_create_takes_over_what_a_dead_replica_left_for_the_request(
    mongo: tuple[MongoStore, AsyncDatabase[dict[str, Any]]],
) -> None:
    store, db = mongo
    first = await new_project(store, rid="req-00000010")
    # The replica died before its last write: app, observatory and observer, no project.
    await db["projects"].delete_one({"_id": first.project.id})
    again = await new_project(store, rid="req-00000010")
    assert again.project.id == first.project.id
    assert again.observer.id == first.observer.id
    assert [s.name for s in await store.services("Admin")] == [first.observer.name]
    found = await store.project_by_request("Admin", "req-00000010")
    assert found is not None and found.id == first.project.id


async def test_owner_and_state_is_the_cheap_head_of_a_project(store: Store) -> None:
    new = await new_project(store, "carol")
    assert await store.owner_and_state(new.project.id) == ("carol", ProjectState.STARTING)
    assert await store.owner_and_state("f" * 24) is None

"""The manager on a real mosquitto: a busy answer past its limit, a resend in hand ignored.

A real SQLite store; a runtime that records deployments, and can hold one until released.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from manager.deps import Deps
from manager.service import ManagerService
from manager.store.sqlite import SqliteStore
from mqtt.link import Link, make_client
from mqtt.requester import session
from protocol import codec, topics
from protocol.events import Event
from protocol.messages import CreateProject, ProjectView, Reply, new_request_id
from protocol.states import InstanceStatus
from services.spec import ServiceSpec
from slas import bundled_dir
from tests.conftest import BrokerProcess

pytestmark = pytest.mark.timeout(30)
USER = "Admin"
SLA: dict[str, Any] = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())


class HeldRuntime:
    """Records deployments; while ``held`` is clear, a deployment waits for it."""

    def __init__(self) -> None:
        self.deployed: list[ServiceSpec] = []
        self.held = asyncio.Event()
        self.held.set()
        self.waiting = asyncio.Event()

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        self.waiting.set()
        await self.held.wait()
        self.deployed.append(spec)
        return InstanceStatus.RUNNING

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Nothing runs."""


async def _emit(_user: str, _event: Event) -> None:
    """Events are not the point here."""


class Manager:
    """A ``ManagerService`` on its own link, with a store and a ``HeldRuntime``."""

    def __init__(self, store: SqliteStore, runtime: HeldRuntime) -> None:
        self.store = store
        self.runtime = runtime


@pytest.fixture
async def manager(
    tmp_path: Path, mosquitto: BrokerProcess, request: pytest.FixtureRequest
) -> AsyncIterator[Manager]:
    store = await SqliteStore.open(tmp_path / "m.db")
    runtime = HeldRuntime()
    link = Link(mosquitto.address, "manager-" + new_request_id()[:8], persistent=False)
    busy_at = getattr(request, "param", 128)
    ManagerService(link, Deps(store, runtime, _emit), busy_at=busy_at)
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    await link.wait_connected(5)
    try:
        yield Manager(store, runtime)
    finally:
        runtime.held.set()
        stop.set()
        await task
        await store.close()


def start_request(client_id: str, request_id: str | None = None) -> CreateProject:
    return CreateProject(
        request_id=request_id or new_request_id(),
        reply_to=client_id,
        sla={**SLA, "customerID": USER},
        sla_name="mnist_sklearn_small.json",
    )


@pytest.mark.parametrize("manager", [0], indirect=True)
async def test_past_its_limit_a_start_is_answered_busy_and_nothing_is_made(
    manager: Manager, mosquitto: BrokerProcess
) -> None:
    client_id = "cli-" + new_request_id()
    request = start_request(client_id)
    async with make_client(mosquitto.address, client_id, persistent=False) as client:
        await client.subscribe(str(topics.reply(USER, client_id)), qos=1)
        topic = str(topics.request(USER, topics.Op.CREATE_PROJECT))
        await client.publish(topic, codec.encode(request), qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    reply = codec.decode(Reply, message.payload)
    assert reply.request_id == request.request_id
    assert not reply.ok
    assert reply.error is not None
    assert reply.error.code == "busy"
    assert "ask again" in reply.error.message
    assert await manager.store.projects(USER) == []


class Ignored(logging.Handler):
    """Sets ``twice`` once the manager said twice that a request is in hand already."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen = 0
        self.twice = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += "in hand already" in record.getMessage()
        if self.seen >= 2:
            self.twice.set()


async def test_a_resend_of_a_start_in_hand_is_not_started_again(
    manager: Manager, mosquitto: BrokerProcess
) -> None:
    """The observer's deployment is held while the same request comes three times."""
    ignored = Ignored()
    logger = logging.getLogger("manager.service")
    logger.addHandler(ignored)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        await _three_copies_of_one_start(manager, mosquitto, ignored)
    finally:
        logger.removeHandler(ignored)
        logger.setLevel(level)


async def _three_copies_of_one_start(
    manager: Manager, mosquitto: BrokerProcess, ignored: Ignored
) -> None:
    manager.runtime.held.clear()
    client_id = "cli-" + new_request_id()
    request = start_request(client_id)
    topic = str(topics.request(USER, topics.Op.CREATE_PROJECT))
    async with make_client(mosquitto.address, client_id, persistent=False) as client:
        await client.subscribe(str(topics.reply(USER, client_id)), qos=1)
        await client.publish(topic, codec.encode(request), qos=1)
        await asyncio.wait_for(manager.runtime.waiting.wait(), 10)
        for _ in range(2):
            await client.publish(topic, codec.encode(request), qos=1)
        await asyncio.wait_for(ignored.twice.wait(), 10)
        manager.runtime.held.set()
        replies: list[Reply] = []
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                replies.append(codec.decode(Reply, message.payload))
                break
        marker = start_request(client_id)
        await client.publish(topic, codec.encode(marker), qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                replies.append(codec.decode(Reply, message.payload))
                if replies[-1].request_id == marker.request_id:
                    break
    # One answer to the three copies, then the next request's: nothing done twice.
    assert [r.request_id for r in replies] == [request.request_id, marker.request_id]
    assert all(r.ok for r in replies)
    projects = await manager.store.projects(USER)
    assert sorted(p.request_id for p in projects) == sorted([request.request_id, marker.request_id])


@pytest.mark.parametrize("manager", [0], indirect=True)
async def test_the_cli_session_honours_busy_and_gets_the_project_once_the_manager_has_room(
    manager: Manager, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy answers until the limit is raised; the session asks again, then gets its project."""
    busy_seen = asyncio.Event()
    service_busy = ManagerService._busy  # noqa: SLF001 - observed, then the limit is lifted

    async def busy_once(self: ManagerService, *args: Any) -> None:
        await service_busy(self, *args)
        self._busy_at = 128
        busy_seen.set()

    monkeypatch.setattr(ManagerService, "_busy", busy_once)
    retries: list[int] = []
    async with session(mosquitto.address, USER, 20) as sess:
        sess.on_retry = retries.append
        request = start_request(sess.client_id)
        topic = topics.request(USER, topics.Op.CREATE_PROJECT)
        view = await sess.request(topic, request, ProjectView, 20)
    assert busy_seen.is_set()
    assert view.request_id == request.request_id
    assert retries == []  # a busy answer is not reported as "no answer yet"
    assert [p.id for p in await manager.store.projects(USER)] == [view.id]

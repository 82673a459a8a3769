"""The secure mode's training ACL on a real mosquitto: a project's actors stay in their project.

Actors log in with their project id as user name; ``ACTOR_ACL`` lets them read and write
only ``flops/v1/users/<any>/projects/<their project>/train/#``.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from broker.process import mosquitto_binary, wait_port
from broker.security import ACTOR_ACL, PasswordFile
from broker.server import free_port
from mqtt.link import BrokerAddress, Credentials
from services.training import topics
from services.training.bus import BrokerTarget, Bus, connect
from services.training.messages import Presence
from services.training.settings import TrainingSettings

pytestmark = pytest.mark.timeout(30)
A, B = "a" * 24, "b" * 24
PASSWORD = "secret-password"  # noqa: S105 - a test broker's account


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerAddress]:
    folder = tmp_path_factory.mktemp("acl")
    passwords = PasswordFile(folder / "passwd")
    for project in (A, B):
        passwords.set_actor(project, PASSWORD)
    (folder / "acl").write_text(ACTOR_ACL)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\n"
        + (f"user {getpass.getuser()}\n" if os.geteuid() == 0 else "")
    )
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield BrokerAddress("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(10)


async def _bus(address: BrokerAddress, project: str) -> AsyncIterator[Bus]:
    target = BrokerTarget(address, Credentials(project, PASSWORD))
    async with connect(target, f"actor-{project[:4]}", TrainingSettings()) as bus:
        yield bus


def _hello(sender: str) -> Presence:
    return Presence(kind="hello", sender=sender, run="0123456789abcdef")


async def _first(bus: Bus) -> str:
    async for topic, _ in bus.receive():
        return topic
    raise AssertionError("the connection ended")


async def test_an_actor_cannot_read_another_projects_training_topics(
    secured: BrokerAddress,
) -> None:
    theirs, mine = topics.Group("alice", A), topics.Group("bob", B)
    async for a in _bus(secured, A):
        async for b in _bus(secured, B):
            await b.subscribe(theirs.tasks, mine.tasks)
            await a.send_json(theirs.tasks, _hello("aggr"))  # A's parameters: not for B
            await b.send_json(mine.tasks, _hello("mark"))
            async with asyncio.timeout(10):
                assert await _first(b) == mine.tasks


async def test_an_actor_cannot_write_another_projects_training_topics(
    secured: BrokerAddress,
) -> None:
    theirs = topics.Group("alice", A)
    async for a in _bus(secured, A):
        await a.subscribe(topics.project_filter("alice", A))
        async for b in _bus(secured, B):
            await b.send_json(theirs.results, _hello("intruder"))  # dropped by the broker
            await a.send_json(theirs.learners, _hello("mark"))
            async with asyncio.timeout(10):
                assert await _first(a) == theirs.learners


def test_the_acl_pattern_is_the_filter_of_a_projects_training_topics() -> None:
    pattern = ACTOR_ACL.splitlines()[-1].split()[-1]
    assert pattern.replace("%u", A) == topics.project_filter("u", A).replace("/u/", "/+/", 1)

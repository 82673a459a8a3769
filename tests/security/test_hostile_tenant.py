"""A user with a valid account acting against the stack and the other users (issue 10).

Real processes: `flops up --detach --secure` with its mosquitto, the CLI, and raw MQTT
clients that do what the CLI never would.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mqtt.tls import client_context
from protocol import codec, topics
from protocol.messages import ListProjects, Reply
from tests.conftest import make_repo, wait_until
from tests.security.attacks import Door, connack, offline_backlog, retained_after
from tests.security.conftest import PASSWORDS, Secure, secure_stack, sla_file

pytestmark = pytest.mark.timeout(180)
MiB = 1024 * 1024


def door(secure: Secure, user: str) -> Door:
    """Where ``user`` logs in: the people's listener, with a password."""
    return Door(secure.address.port, client_context(secure.ca), user, PASSWORDS[user])


def service_door(secure: Secure) -> Door:
    """Where the stack's services log in: their listener, with the client certificate."""
    tls = secure.data_dir / "tls"
    context = client_context(tls / "ca.crt", tls / "service.crt", tls / "service.key")
    conf = (secure.data_dir / "broker" / "mosquitto.conf").read_text().splitlines()
    ports = [int(line.split()[1]) for line in conf if line.startswith("listener ")]
    return Door(ports[1], context)


def started(secure: Secure, user: str) -> dict[str, object]:
    project: dict[str, object] = secure.json(
        user, "project", "--project-sla-file-name", str(secure.slas[user]), "--no-follow"
    )["project"]
    return project


def guessable_ids(secure: Secure, project_id: str) -> list[str]:
    """The client ids a user can know: the stack's identifier (shown as a project's host,
    documented as `flops-stack`) and the names of his project's services."""
    shown = secure.json("bob", "status", project_id)
    return ["flops-stack", shown["host"], *(s["name"] for s in shown["services"])]


def assert_no_takeover(secure: Secure, project_id: str) -> None:
    """Bob connects with every client id he can know, asking for its persistent session."""
    for name in dict.fromkeys(guessable_ids(secure, project_id)):
        present, code = connack(door(secure, "bob"), name, clean=False)
        connack(door(secure, "bob"), name, clean=True)  # leave no session behind
        assert code == 0
        assert not present, f"bob took over the session of {name!r}"


def test_bob_cannot_take_over_the_connection_of_the_stack(secure: Secure) -> None:
    project_id = str(started(secure, "bob")["id"])
    assert_no_takeover(secure, project_id)
    assert secure.json("bob", "status", project_id)["id"] == project_id  # still served


@pytest.fixture(scope="module")
def process_secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """The secure mode with the process runtime: every service has a connection of its own."""
    with secure_stack(tmp_path_factory.mktemp("process"), FLOPS_RUNTIME="process") as stack:
        yield stack


def test_bob_cannot_take_over_the_connection_of_a_service_process(process_secure: Secure) -> None:
    project_id = str(started(process_secure, "bob")["id"])
    assert_no_takeover(process_secure, project_id)

    def rested() -> dict[str, Any] | None:  # the build stage's end: its builder has run
        shown: dict[str, Any] = process_secure.json("bob", "status", project_id)
        return shown if shown["state"] in ("IMAGES_READY", "FAILED") else None

    shown = wait_until(rested, timeout=60)
    assert shown["state"] == "IMAGES_READY", shown
    assert {s["instances"][0]["status"] for s in shown["services"]} <= {
        "RUNNING",
        "COMPLETED",
        "UNDEPLOYED",
    }  # the build stage undeploys its builder


@pytest.fixture(scope="module")
def cluster_secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """The secure mode in cluster mode: the manager takes requests in a shared subscription."""
    with secure_stack(tmp_path_factory.mktemp("cluster"), FLOPS_CLUSTER="true") as stack:
        yield stack


async def test_bob_cannot_join_the_managers_shared_subscription(cluster_secure: Secure) -> None:
    """Joined, he would get a share of everyone's requests, which his ACL then drops."""
    requests = 12
    async with door(cluster_secure, "bob").client("bob-hijack") as bob:
        for group in ("flops-managers", "flops-stack"):
            await bob.subscribe(f"$share/{group}/{topics.ALL_REQUESTS}", qos=1)
            await bob.subscribe(f"$share/{group}/flops/v1/users/alice/requests/+", qos=1)
        alice_id = "alice-" + uuid.uuid4().hex
        async with door(cluster_secure, "alice").client(alice_id) as alice:
            await alice.subscribe(str(topics.reply("alice", alice_id)), qos=1)
            sent = [
                ListProjects(request_id=f"hijack-{i:04d}", reply_to=alice_id)
                for i in range(requests)
            ]
            for request in sent:
                topic = topics.request("alice", topics.Op.LIST_PROJECTS)
                await alice.publish(str(topic), codec.encode(request), qos=1)
            answered: set[str] = set()
            async with asyncio.timeout(20):  # every request is answered at once, or never
                async for message in alice.messages:
                    assert isinstance(message.payload, bytes)
                    answered.add(codec.decode(Reply, message.payload).request_id)
                    if len(answered) == requests:
                        break
    assert answered == {r.request_id for r in sent}


async def test_a_users_offline_session_holds_a_bounded_backlog(secure: Secure) -> None:
    """His requests fill his offline session with answers; the broker keeps 32 MiB at most."""
    reply_topic = str(topics.reply("bob", "offline-bob"))
    size = MiB - 1024  # the largest message the broker takes
    received = await offline_backlog(
        door(secure, "bob"), service_door(secure), reply_topic, 48, size
    )
    # mosquitto queues while the queue is under its limit: one message may pass it.
    assert 16 * MiB <= received <= 32 * MiB + size


async def test_a_user_cannot_park_retained_messages_in_the_broker(secure: Secure) -> None:
    topic = str(topics.request("bob", topics.Op.LIST_APPS))
    assert await retained_after(door(secure, "bob"), service_door(secure), topic) == []


def test_the_data_dir_and_its_databases_are_private(secure: Secure) -> None:
    data = secure.data_dir
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("manager.db", "observer.db", "stack.log", "stack.json"):
        assert (data / name).stat().st_mode & 0o077 == 0, name
    assert (data / "broker").stat().st_mode & 0o077 == 0


def test_a_file_repository_outside_the_allowed_folders_is_refused(secure: Secure) -> None:
    """The builder would read it with the stack's rights and tell its HEAD to the user."""
    elsewhere = make_repo(secure.root / "elsewhere")
    link = secure.root / "repos" / "linked" / elsewhere.name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere)
    attempts = secure.root / "attempts"
    attempts.mkdir()
    before = secure.json("bob", "projects")["total"]
    dotted = secure.root / "repos" / ".." / "elsewhere" / elsewhere.parent.name / elsewhere.name
    for repo in (elsewhere, dotted, link):
        sla = sla_file(attempts, "bob", repo)
        done = secure.cli("bob", "project", "--project-sla-file-name", str(sla), "--output", "json")
        assert done.returncode == 1, done.stdout
        error = json.loads(done.stdout)["error"]
        assert error["code"] == "forbidden", error
        assert "local_repo_roots" in error["message"]
    assert secure.json("bob", "projects")["total"] == before


async def test_malformed_messages_cost_the_log_little_and_forge_no_line(secure: Secure) -> None:
    """Each would be logged with its topic (up to 64 KiB) and its request id unquoted."""
    log_file = secure.data_dir / "stack.log"
    before = log_file.stat().st_size
    forged = {"request_id": "x\n2099-01-01 00:00:00,000 ERROR forged: line", "reply_to": "a/b"}
    flood, long_op = 300, "o" * 30_000
    async with door(secure, "bob").client("bob-flood") as bob:
        topic = str(topics.request("bob", topics.Op.LIST_APPS))
        await bob.publish(topic, json.dumps(forged).encode(), qos=1)
        for i in range(flood):
            await bob.publish(f"flops/v1/users/bob/requests/{long_op}{i}", b"{}", qos=1)
    secure.json("bob", "projects")  # answered after them: they were all handled
    written = log_file.read_bytes()[before:].decode()
    assert len(written) < 20_000, f"{len(written)} bytes logged for {flood} messages"
    assert max(len(line) for line in written.splitlines()) < 1_000
    assert not [line for line in written.splitlines() if line.startswith("2099")]
    assert "'x\\n2099-01-01" in written  # logged, quoted

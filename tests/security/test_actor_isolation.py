"""On the secure stack, each project's training actors are confined to their own project.

Alice's and Bob's projects train at once on `flops up --detach --secure` (its mosquitto,
the real training stage); the test logs in with the broker account the stack issued to the
actors of each project, reading the password where the stack keeps it for them
(``<data>/broker/actors/<project id>``, ``broker.accounts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from broker.security import PasswordFile
from core.ids import is_object_id
from mqtt.tls import client_context
from services.training import topics
from slas import bundled_dir
from stack.discovery import pid_alive
from stack.secure import actors_path, passwd_path
from tests.conftest import run_cli, wait_until
from tests.security.conftest import Secure, secure_stack

pytestmark = pytest.mark.timeout(300)
ROUNDS = 2000  # far more than the test lasts: both projects train throughout, then stop


def _start(secure: Secure, user: str, folder: Path) -> str:
    sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla.update(customerID=user, post_training_steps=[])
    sla["training_configuration"]["training_rounds"] = ROUNDS
    path = folder / f"{user}-train.json"
    path.write_text(json.dumps(sla))
    doc = secure.json(user, "project", "--project-sla-file-name", str(path), "--no-follow")
    return str(doc["project"]["id"])


def _password(secure: Secure, project: str) -> str:
    """The actors' password, once the stack issued it (their first actor is deployed)."""
    path = actors_path(secure.data_dir) / project
    wait_until(path.exists, 120)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path.read_text().strip()


def _actor(secure: Secure, project: str, password: str, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        secure.address.port,
        username=project,
        password=password,
        tls_context=client_context(secure.ca),
        identifier=f"test-{name}",
        timeout=10,
    )


class Seen:
    """What one client received, and a way to await a message on a topic."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._more = asyncio.Event()

    async def collect(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.messages.append((str(message.topic), payload))
            self._more.set()

    async def until(self, topic: str) -> None:
        async with asyncio.timeout(60):
            while True:
                self._more.clear()
                if any(seen == topic for seen, _ in self.messages):
                    return
                await self._more.wait()


async def _isolation(secure: Secure, alices: str, bobs: str, passwords: dict[str, str]) -> None:
    a, b = topics.Group("alice", alices), topics.Group("bob", bobs)
    a_all, b_all = topics.project_filter("alice", alices), topics.project_filter("bob", bobs)
    witness_a, witness_b = f"{a_all[:-1]}witness/tasks", f"{b_all[:-1]}witness/tasks"
    seen_a, seen_b = Seen(), Seen()
    async with (
        _actor(secure, alices, passwords[alices], "a") as mine_a,
        _actor(secure, bobs, passwords[bobs], "b") as intruder,
    ):
        await mine_a.subscribe(a_all, qos=1)
        # Bob's actor asks for Alice's parameters, everything, and its own project.
        for wanted in (a_all, "flops/#", b_all):
            await intruder.subscribe(wanted, qos=1)
        collectors = [
            asyncio.create_task(seen_a.collect(mine_a)),
            asyncio.create_task(seen_b.collect(intruder)),
        ]
        try:
            await seen_a.until(a.tasks)  # Alice's aggregator sends her global parameters
            await seen_b.until(b.tasks)  # Bob's own training topics work for his actor
            # Bob's actor writes into Alice's tasks and results: the broker drops both.
            await intruder.publish(a.tasks, b'{"forged": "tasks"}', qos=1)
            await intruder.publish(a.results, b'{"forged": "results"}', qos=1)
            await intruder.publish(witness_b, b"b-mark", qos=1)
            await seen_b.until(witness_b)
            # Routed after Bob's two: had those reached Alice's topics, they came first.
            await mine_a.publish(witness_a, b"a-mark", qos=1)
            await seen_a.until(witness_a)
        finally:
            for collector in collectors:
                collector.cancel()
            await asyncio.gather(*collectors, return_exceptions=True)
    forged = [p for _, p in seen_a.messages if b"forged" in p]
    assert forged == [], "Bob's actor wrote into Alice's topics"
    leaked = sorted({t for t, _ in seen_b.messages if not t.startswith(b_all[:-1])})
    assert leaked == [], f"Bob's actor read {leaked}"


def _shown_in(secure: Secure, password: str) -> list[Path]:
    """Where ``password`` shows: files of the stack, command lines and environments.

    Only its own file in ``actors/`` may hold it (never a log, never a process's arguments).
    """
    secret = password.encode()
    places = [p for p in secure.data_dir.rglob("*") if p.is_file()]
    proc = [
        p
        for d in Path("/proc").iterdir()
        if d.name.isdigit()
        for p in (d / "cmdline", d / "environ")
    ]
    found = []
    for place in places + proc:
        with contextlib.suppress(OSError):
            if secret in place.read_bytes():
                found.append(place)
    return found


def _actor_accounts(secure: Secure) -> list[str]:
    names = PasswordFile(passwd_path(secure.data_dir)).users()
    return sorted(name for name in names if is_object_id(name))


@pytest.fixture(scope="module", params=["local", "process"])
def training(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Secure]:
    """The secure stack; its actors run as tasks (local) or as processes of their own."""
    root = tmp_path_factory.mktemp("isolation")
    with secure_stack(root, FLOPS_STAGES="all", FLOPS_RUNTIME=request.param) as secure:
        done = secure.cli(None, "mock_data", "--mock-sla-file-name", "mnist_multi.json")
        assert done.returncode == 0, done.stdout + done.stderr
        yield secure


def test_a_projects_actors_cannot_reach_another_projects_training_topics(
    training: Secure, tmp_path: Path
) -> None:
    alices, bobs = _start(training, "alice", tmp_path), _start(training, "bob", tmp_path)
    try:
        passwords = {p: _password(training, p) for p in (alices, bobs)}
        asyncio.run(_isolation(training, alices, bobs, passwords))
        for project, password in passwords.items():
            assert _shown_in(training, password) == [actors_path(training.data_dir) / project]
        assert _actor_accounts(training) == sorted([alices, bobs])
        listed = training.cli(None, "user", "list", "--output", "json")
        assert json.loads(listed.stdout) == {"users": ["alice", "bob"]}  # people only
        # Nobody can take a project's id as user name, and with it that project's account.
        add = ["user", "add", alices, "--password-stdin"]
        taken = run_cli(add, training.env, stdin="x" * 12)
        assert taken.returncode == 2
        assert "reserved for the project's training actors" in taken.stderr
        removed = run_cli(["user", "remove", "--yes", alices], training.env)
        assert removed.returncode == 2
        assert "a project id names its training actors' account" in removed.stderr
    finally:
        for user, project in (("alice", alices), ("bob", bobs)):
            stopped = training.cli(user, "stop", "--yes", project)
            assert stopped.returncode == 0, stopped.stderr
    # Stopped: the actors are undeployed, and their accounts are gone with them.
    wait_until(lambda: not _actor_accounts(training), 60)
    assert list(actors_path(training.data_dir).glob("*")) == []


async def _connects(secure: Secure, project: str, password: str) -> bool:
    try:
        async with _actor(secure, project, password, "login"):
            return True
    except aiomqtt.MqttError:
        return False


def test_a_training_resumed_after_a_kill_gets_a_new_account_and_the_old_one_is_gone(
    tmp_path: Path,
) -> None:
    with secure_stack(tmp_path, FLOPS_STAGES="all") as secure:
        done = secure.cli(None, "mock_data", "--mock-sla-file-name", "mnist_multi.json")
        assert done.returncode == 0, done.stdout + done.stderr
        alices = _start(secure, "alice", tmp_path)
        before = _password(secure, alices)
        card = json.loads((secure.data_dir / "stack.json").read_text())
        os.kill(card["pid"], signal.SIGKILL)  # mid-training: nothing removes the account
        wait_until(lambda: not pid_alive(card["pid"]))
        up = run_cli(["up", "--detach", "--secure"], secure.env)
        assert up.returncode == 0, up.stderr + up.stdout
        password = actors_path(secure.data_dir) / alices
        wait_until(lambda: password.exists() and password.read_text() != before, 120)
        after = password.read_text()
        assert _actor_accounts(secure) == [alices]  # the training's actors are back
        assert not asyncio.run(_connects(secure, alices, before))
        assert asyncio.run(_connects(secure, alices, after))
        stopped = secure.cli("alice", "stop", "--yes", alices)
        assert stopped.returncode == 0, stopped.stderr
        wait_until(lambda: not _actor_accounts(secure), 60)

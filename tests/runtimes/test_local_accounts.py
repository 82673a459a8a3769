"""The local runtime gives a training service its project's broker account, for its lifetime.

The on-stack proof with a real broker: ``tests/security/test_actor_isolation.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import BaseModel

from broker.accounts import ProjectAccounts
from broker.security import PasswordFile, ensure_certificates
from mqtt.link import BrokerAddress
from mqtt.wiring import Wiring
from protocol.events import Event
from protocol.states import InstanceStatus
from runtimes.local import LocalRuntime
from services.context import ServiceContext
from services.kinds import KINDS, ServiceKind
from services.spec import ServiceSpec

pytestmark = pytest.mark.timeout(30)
PROJECT = "0123456789abcdef01234567"
SERVICES = Wiring(BrokerAddress("127.0.0.1", 1), BrokerAddress("127.0.0.1", 2))


class Toy(BaseModel):
    """No configuration."""


class Harness:
    """A local runtime with a toy kind that trains and one that does not."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.brokers: dict[str, Wiring | None] = {}
        self.ended: dict[str, InstanceStatus] = {}
        self.done = asyncio.Event()
        self.entered = asyncio.Event()
        self.finish = asyncio.Event()
        for name, trains in (("toytrainer", True), ("toyother", False)):
            kind = ServiceKind(name, name, Toy, self.entry, one_shot=True, trains=trains)
            monkeypatch.setitem(KINDS, name, kind)
        tls = ensure_certificates(tmp_path / "tls")
        self.accounts = ProjectAccounts(
            PasswordFile(tmp_path / "passwd"),
            tmp_path / "actors",
            BrokerAddress("127.0.0.1", 8883),
            tls.ca,
            lambda: None,
        )
        self.runtime = LocalRuntime(
            cast(Any, None), self.emit, lambda names: None, self.status, SERVICES, self.accounts
        )

    async def entry(self, ctx: ServiceContext[Toy]) -> None:
        self.brokers[ctx.spec.name] = ctx.broker
        self.entered.set()
        await self.finish.wait()

    async def emit(self, user: str, event: Event) -> None:
        """Not used by the toys."""

    async def status(self, spec: ServiceSpec, status: InstanceStatus) -> None:
        self.ended[spec.name] = status
        self.done.set()

    async def started(self, *names: str) -> None:
        for name in names:
            spec = ServiceSpec(name + "-id", name, name, "alice", PROJECT, "app")
            await self.runtime.deploy(spec)
        while set(names) - set(self.brokers):
            self.entered.clear()
            await self.entered.wait()

    def account_exists(self) -> bool:
        issued = self.accounts.folder / PROJECT
        return PROJECT in self.accounts.passwords.users() or issued.exists()


async def test_a_training_service_has_its_projects_account_until_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = Harness(tmp_path, monkeypatch)
    await harness.started("toytrainer", "toyother")
    trainer = harness.brokers["toytrainer"]
    assert trainer is not None and trainer.credentials is not None
    assert trainer.credentials.username == PROJECT
    password = (harness.accounts.folder / PROJECT).read_text()
    assert trainer.credentials.password == password
    assert trainer.credentials.tls is not None  # verifies the broker, presents no certificate
    assert trainer.link_address == BrokerAddress("127.0.0.1", 8883)  # the password listener
    assert harness.brokers["toyother"] is SERVICES  # the others keep the services' identity
    harness.finish.set()  # the training ends
    while len(harness.ended) < 2:
        harness.done.clear()
        await harness.done.wait()
    assert harness.ended["toytrainer"] is InstanceStatus.COMPLETED
    assert not harness.account_exists()


async def test_undeploying_a_projects_last_actor_removes_its_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = Harness(tmp_path, monkeypatch)
    await harness.started("toytrainer")
    assert harness.account_exists()
    spec = ServiceSpec("toytrainer-id", "toytrainer", "toytrainer", "alice", PROJECT, "app")
    await harness.runtime.undeploy(spec)  # stop, delete, a failed project
    assert not harness.account_exists()

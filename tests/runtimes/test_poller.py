"""The status poller against a fake orchestrator: changes reported once, errors survived."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import DeployError
from protocol.states import InstanceStatus
from runtimes.poller import StatusPoller
from services.spec import ServiceSpec

pytestmark = pytest.mark.timeout(10)
OBSERVER = ServiceSpec("s1", "observ1", "observer", "Admin", "p1", "a1")
BUILDER = ServiceSpec("s2", "builder1", "builder", "Admin", "p1", "p1")


class FakeOrchestrator:
    """Statuses set by the test; a status of None makes the call fail."""

    def __init__(self) -> None:
        self.statuses: dict[str, InstanceStatus | None] = {}
        self.asked: list[str] = []

    async def status(self, spec: ServiceSpec) -> InstanceStatus:
        self.asked.append(spec.name)
        status = self.statuses[spec.id]
        if status is None:
            raise DeployError("Oakestra read service failed: HTTP 500")
        return status


class Harness:
    def __init__(self) -> None:
        self.oak = FakeOrchestrator()
        self.to_run = [OBSERVER, BUILDER]
        self.reported: list[tuple[str, InstanceStatus]] = []
        self.poller = StatusPoller(self.oak, self.services, self.report, interval=0.01)

    async def services(self) -> list[ServiceSpec]:
        return list(self.to_run)

    async def report(self, spec: ServiceSpec, status: InstanceStatus) -> None:
        self.reported.append((spec.name, status))
        if status in (InstanceStatus.FAILED, InstanceStatus.COMPLETED):
            self.to_run.remove(spec)  # as the store does: ended services are not to run


async def test_each_change_is_reported_once_and_ended_services_are_not_asked_again() -> None:
    h = Harness()
    h.oak.statuses = {"s1": InstanceStatus.REQUESTED, "s2": InstanceStatus.CLUSTER_SCHEDULED}
    assert await h.poller.poll_once() == 2
    h.oak.statuses["s1"] = InstanceStatus.RUNNING
    assert await h.poller.poll_once() == 1
    assert await h.poller.poll_once() == 0
    h.oak.statuses["s2"] = InstanceStatus.FAILED
    assert await h.poller.poll_once() == 1
    h.oak.asked.clear()
    assert await h.poller.poll_once() == 0
    assert h.oak.asked == ["observ1"]
    assert h.reported == [
        ("observ1", InstanceStatus.REQUESTED),
        ("builder1", InstanceStatus.CLUSTER_SCHEDULED),
        ("observ1", InstanceStatus.RUNNING),
        ("builder1", InstanceStatus.FAILED),
    ]


async def test_an_unanswered_status_is_skipped_for_one_round() -> None:
    h = Harness()
    h.oak.statuses = {"s1": None, "s2": InstanceStatus.RUNNING}
    assert await h.poller.poll_once() == 1
    h.oak.statuses["s1"] = InstanceStatus.COMPLETED
    assert await h.poller.poll_once() == 1
    assert h.reported == [
        ("builder1", InstanceStatus.RUNNING),
        ("observ1", InstanceStatus.COMPLETED),
    ]


async def test_run_polls_until_stopped() -> None:
    h = Harness()
    h.oak.statuses = {"s1": InstanceStatus.RUNNING, "s2": InstanceStatus.RUNNING}
    stop = asyncio.Event()
    task = asyncio.create_task(h.poller.run(stop))
    await asyncio.sleep(0.1)  # about ten rounds
    stop.set()
    await task
    assert len(h.oak.asked) >= 4
    assert h.reported == [("observ1", InstanceStatus.RUNNING), ("builder1", InstanceStatus.RUNNING)]

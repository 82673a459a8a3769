"""The benchmark runtime: observers go to the local runtime, every other service is recorded."""

import asyncio
from typing import cast

import pytest

from core.errors import DeployError
from protocol.states import InstanceStatus
from runtimes.local import LocalRuntime
from runtimes.record import RecordRuntime
from services.spec import ServiceSpec

PROJECT = "6761bf5d59461659a24b1197"
OBSERVER = ServiceSpec("a" * 24, "observ1", "observer", "Admin", PROJECT, "b" * 24)
BUILDER = ServiceSpec(
    "c" * 24, "builder1", "builder", "Admin", PROJECT, PROJECT,
    {"repo_url": "https://github.com/Malyuk-A/r", "registry": "localhost:5073", "data_dir": "/d"},
)  # fmt: skip


class Local:
    """Stands in for the local runtime: what reached it."""

    def __init__(self) -> None:
        self.deployed: list[str] = []
        self.undeployed: list[str] = []

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        self.deployed.append(spec.kind)
        return InstanceStatus.RUNNING

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        self.undeployed.append(spec.kind)

    def running(self) -> list[ServiceSpec]:
        return [OBSERVER] if self.deployed and not self.undeployed else []


async def test_observers_run_locally_and_the_rest_is_recorded_alive_not_run() -> None:
    local = Local()
    alive: list[list[str]] = []
    told = asyncio.Event()

    def tell(names: list[str]) -> None:
        alive.append(names)
        told.set()

    runtime = RecordRuntime(cast(LocalRuntime, local), tell)
    assert await runtime.deploy(OBSERVER) is InstanceStatus.RUNNING
    assert await runtime.deploy(BUILDER) is InstanceStatus.RUNNING
    assert local.deployed == ["observer"]
    assert [s.kind for s in runtime.running()] == ["observer", "builder"]
    stop = asyncio.Event()
    stop.set()
    await runtime.report_alive(stop, 1.0)  # returns at once: stopped
    assert alive == []
    stop.clear()
    task = asyncio.create_task(runtime.report_alive(stop, 0.01))
    await asyncio.wait_for(told.wait(), 5)
    stop.set()
    await task
    assert alive[0] == ["builder1"]
    await runtime.undeploy(BUILDER)
    await runtime.undeploy(OBSERVER, purge=True)
    assert local.undeployed == ["observer"]
    assert runtime.running() == []


async def test_a_service_with_a_bad_config_is_refused_as_the_local_runtime_refuses_it() -> None:
    runtime = RecordRuntime(cast(LocalRuntime, Local()), lambda _names: None)
    bad = ServiceSpec("d" * 24, "builder2", "builder", "Admin", PROJECT, PROJECT, {"nope": 1})
    with pytest.raises(DeployError, match="builder2"):
        await runtime.deploy(bad)

"""The benchmark runtime: records deployments instead of running services. Not for users.

The suite (``bench/``, docs/performance.md) measures the control plane of a project start:
the request, the store, the observer, the events, the answer. Since every start deploys a
builder (and, with all stages, trains), a start measured on the local runtime would also
measure the build. This runtime hosts observers as the local runtime does (they are the
project's log) and records every other service as deployed and ``RUNNING`` without running
it; projects therefore rest in the state their first stage sets (``BUILDING``). It is
chosen by the stack setting ``bench_record_services``, which only the suite sets.
"""

from __future__ import annotations

import asyncio
import contextlib

from core.errors import ConfigError, DeployError
from protocol.states import InstanceStatus
from runtimes.local import Alive, LocalRuntime
from services.kinds import kind_of
from services.spec import ServiceSpec


class RecordRuntime:
    """Implements ``runtimes.base.Runtime``: observers on ``local``, the rest recorded."""

    def __init__(self, local: LocalRuntime, alive: Alive) -> None:
        self._local = local
        self._alive = alive
        self.recorded: dict[str, ServiceSpec] = {}  # by service id

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        """Host an observer; record any other service (its config is still checked)."""
        try:
            kind = kind_of(spec.kind)
            kind.validated(spec.config)
        except ConfigError as exc:
            raise DeployError(f"{spec.name}: {exc}") from exc
        if kind.entry is None:
            return await self._local.deploy(spec)
        self.recorded[spec.id] = spec
        return InstanceStatus.RUNNING

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Forget a recorded service; an observer is undeployed by ``local``."""
        if self.recorded.pop(spec.id, None) is None:
            await self._local.undeploy(spec, purge=purge)

    def running(self) -> list[ServiceSpec]:
        """The observers hosted and the services recorded (``Inventory``)."""
        return self._local.running() + list(self.recorded.values())

    async def report_alive(self, stop: asyncio.Event, interval: float) -> None:
        """Every ``interval`` until ``stop``: the recorded services count as reporting."""
        while not stop.is_set():
            self._alive([spec.name for spec in self.recorded.values()])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()

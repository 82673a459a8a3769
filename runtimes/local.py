"""The local runtime: runs a project's services as tasks in this process.

Observers are cheap registrations in one ``ObserverHost`` (thousands fit in one process);
every other kind runs its entry coroutine (``services.kinds``) as a supervised task whose
end is reported as an instance status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from broker.accounts import ProjectAccounts
from core.errors import ConfigError, DeployError, FlopsError
from mqtt.wiring import Wiring
from protocol.events import Event
from protocol.states import InstanceStatus
from runtimes.base import StatusSink
from services.context import ServiceContext, Shared
from services.kinds import KINDS, OBSERVER, ServiceKind, kind_of
from services.observer.host import Hosted, ObserverHost
from services.spec import ServiceSpec

log = logging.getLogger(__name__)
Emit = Callable[[str, Event], Awaitable[None]]  # (user, event)
Alive = Callable[[list[str]], None]  # names of the services whose tasks run


class LocalRuntime:
    """Implements ``runtimes.base.Runtime`` on this machine."""

    def __init__(
        self,
        observers: ObserverHost,
        emit: Emit,
        alive: Alive,
        on_status: StatusSink,
        broker: Wiring | None = None,
        accounts: ProjectAccounts | None = None,
    ) -> None:
        self._observers = observers
        self._emit = emit
        self._alive = alive
        self._beating: set[str] = set()  # ids of services that have started to report
        self._on_status = on_status
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._specs: dict[str, ServiceSpec] = {}  # of the service tasks, by service id
        self._stopping = False
        self._shared = Shared()
        self._broker = broker  # handed to services that connect themselves (training actors)
        self._accounts = accounts  # the secure mode: each project's actors have their own

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        """Start ``spec``; a service that already runs is left alone."""
        try:
            kind = kind_of(spec.kind)
            config = kind.validated(spec.config)
        except ConfigError as exc:
            raise DeployError(f"{spec.name}: {exc}") from exc
        if kind.entry is None:
            await self._observers.deploy(Hosted(spec.project_id, spec.user, spec.id, spec.name))
            return InstanceStatus.RUNNING
        task = self._tasks.get(spec.id)
        if task is None or task.done():
            # No await between creating the task and returning: the caller's next
            # publish goes out before the service's first one.
            self._tasks[spec.id] = asyncio.create_task(
                self._supervise(spec, kind, config), name=spec.name
            )
            self._specs[spec.id] = spec
        return InstanceStatus.RUNNING

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Stop a service; an observer's log is removed only with ``purge``."""
        kind = KINDS.get(spec.kind)
        if kind is not None and kind.entry is None:
            await self._observers.undeploy(spec.project_id, purge=purge)
            return
        self._specs.pop(spec.id, None)
        task = self._tasks.pop(spec.id, None)
        if task is asyncio.current_task():
            return  # its own event ended its stage (a one-shot's last): it is returning
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _supervise(self, spec: ServiceSpec, kind: ServiceKind[Any], config: Any) -> None:  # noqa: ANN401 - the kind's own config model
        async def emit(event: Event) -> None:
            await self._emit(spec.user, event)

        async def beat() -> None:
            # The service reports: from now on its running task counts as its heartbeat.
            self._beating.add(spec.id)

        assert kind.entry is not None  # noqa: S101 - deploy() hosts the others
        try:
            with self._broker_for(spec, kind) as broker:
                await kind.entry(
                    ServiceContext(spec, config, emit, beat, self._shared, broker=broker)
                )
        except FlopsError as exc:
            log.info("service %s failed: %s", spec.name, exc)
            status = InstanceStatus.FAILED
        except Exception:
            if self._stopping:
                return  # cut off by the shutdown: restored at the next start
            log.exception("service %s crashed", spec.name)
            status = InstanceStatus.FAILED
        else:
            status = InstanceStatus.COMPLETED
        self._tasks.pop(spec.id, None)
        self._specs.pop(spec.id, None)
        self._beating.discard(spec.id)
        await self._on_status(spec, status)

    @contextlib.contextmanager
    def _broker_for(self, spec: ServiceSpec, kind: ServiceKind[Any]) -> Iterator[Wiring | None]:
        """The broker of a service while it runs: its project's actor account if it trains."""
        if not kind.trains or self._accounts is None:
            yield self._broker
            return
        account = self._accounts.grant(spec.project_id, spec.id)
        try:
            yield account.wiring()
        finally:
            self._accounts.release(spec.project_id, spec.id)

    def running(self) -> list[ServiceSpec]:
        """The observers hosted here and the services whose tasks run (``Inventory``)."""
        tasks = [self._specs[sid] for sid, task in self._tasks.items() if not task.done()]
        observers = [
            ServiceSpec(h.service_id, h.name, OBSERVER.name, h.user, h.project_id, "")
            for h in self._observers.hosted()
        ]
        return observers + tasks

    async def report_alive(self, stop: asyncio.Event, interval: float) -> None:
        """Tell the manager, every ``interval``, which services' tasks still run.

        Only services that have started to report count, so one that hangs before its first
        report still misses its deadline. One in-process call for all of them, instead of a
        heartbeat message per service: 10,000 resting builders would otherwise send
        hundreds of messages a second.
        """
        while not stop.is_set():
            self._alive(
                [
                    task.get_name()
                    for sid, task in self._tasks.items()
                    if sid in self._beating and not task.done()
                ]
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()

    async def stop(self) -> None:
        """Cancel every service task and wait for them; they are restored at the next start."""
        self._stopping = True
        pending = set(self._tasks.values())
        self._tasks.clear()
        while pending:  # cancel again any task that let a cancellation slip
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)

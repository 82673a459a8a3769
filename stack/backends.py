"""The stack's runtime backends: the runtime the settings name and what runs around it.

``local`` runs observers in this process's observer host and builders as tasks; ``process``
runs each service as a child process (``flops service run``); ``oakestra`` deploys them on
Oakestra and polls their statuses. Only ``local`` answers log queries in this process: with
the others each project's observer does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from broker.accounts import ProjectAccounts
from core.errors import ConfigError
from manager.store.interface import Store
from mqtt.link import Link
from mqtt.wiring import Wiring
from protocol.events import event_id
from runtimes.base import Inventory, Runtime, StatusSink
from runtimes.local import Emit, LocalRuntime
from runtimes.poller import StatusPoller
from runtimes.process import ProcessRuntime
from runtimes.record import RecordRuntime
from services.observer.host import ObserverHost
from services.observer.store import LogStore
from stack.settings import StackSettings

if TYPE_CHECKING:
    import httpx

Alive = Callable[[list[str]], None]


class Backend(Protocol):
    """A runtime with its start, background work, drain and close."""

    runtime: Runtime

    @property
    def observers(self) -> ObserverHost | None:
        """The observer host of this process, if observers run here (events go to it)."""

    @property
    def inventory(self) -> Inventory | None:
        """What the runtime runs in this process, if it can tell (cluster reconciliation)."""

    async def prepare(self, tasks: asyncio.TaskGroup) -> None:
        """Before the link subscribes and services are restored."""

    async def run(self, stop: asyncio.Event) -> None:
        """Background work once connected, until ``stop``."""

    async def drain(self) -> None:
        """While the link is still connected, after the handlers finished."""

    async def close(self) -> None:
        """Release what it holds, after the link closed."""


class LocalBackend:
    """Observers in one host of this process, builders as tasks (the embedded default)."""

    def __init__(
        self, settings: StackSettings, link: Link, logs: LogStore, emit: Emit, alive: Alive,
        on_status: StatusSink, wiring: Wiring | None = None,
        accounts: ProjectAccounts | None = None,
    ) -> None:  # fmt: skip
        self._logs = logs
        self._interval = settings.service_deadline / 4
        self.observers = ObserverHost(
            link,
            logs,
            lambda sid: event_id(sid, "started"),
            answer_unknown=not settings.cluster,
        )
        self.local = LocalRuntime(self.observers, emit, alive, on_status, wiring, accounts)
        # The benchmark runtime (runtimes/record.py), for the suite only: services recorded.
        self.record = RecordRuntime(self.local, alive) if settings.bench_record_services else None
        self.runtime: Runtime = self.record or self.local
        self.inventory: Inventory = self.record or self.local
        self._writer: asyncio.Task[None] | None = None

    async def prepare(self, tasks: asyncio.TaskGroup) -> None:
        """Start the log writer and take up the observers registered before."""
        self._writer = tasks.create_task(self.observers.write_forever())
        await self.observers.load()

    async def run(self, stop: asyncio.Event) -> None:
        """Report the services whose tasks run (or that are recorded), as their heartbeats."""
        if self.record is not None:
            await asyncio.gather(
                self.local.report_alive(stop, self._interval),
                self.record.report_alive(stop, self._interval),
            )
            return
        await self.local.report_alive(stop, self._interval)

    async def drain(self) -> None:
        """Stop the services, then write the queued events."""
        await self.local.stop()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.observers.flush()

    async def close(self) -> None:
        """Close the log database."""
        await self._logs.close()


class ProcessBackend:
    """One child process per service; liveness from their heartbeat messages."""

    def __init__(
        self,
        settings: StackSettings,
        wiring: Wiring,
        on_status: StatusSink,
        accounts: ProjectAccounts | None = None,
    ) -> None:
        self.processes = ProcessRuntime(
            settings.data_dir,
            wiring,
            on_status,
            settings.service_start_timeout,
            accounts=accounts,
        )
        self.runtime: Runtime = self.processes
        self.observers: ObserverHost | None = None
        self.inventory: Inventory | None = None

    async def prepare(self, tasks: asyncio.TaskGroup) -> None:
        """Nothing to prepare."""

    async def run(self, stop: asyncio.Event) -> None:
        """Nothing in the background: each child is watched by its own task."""

    async def drain(self) -> None:
        """End the children (they drain on SIGTERM); restored at the next start."""
        await self.processes.stop()

    async def close(self) -> None:
        """Nothing to close."""


class OakestraBackend:
    """Services on Oakestra; a poller turns their statuses into status changes."""

    def __init__(
        self,
        settings: StackSettings,
        wiring: Wiring,
        store: Store,
        on_status: StatusSink,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        try:
            from runtimes.oakestra import (  # noqa: PLC0415 - optional dependency
                OakestraRuntime,
                load_oakestra_settings,
            )
        except ImportError as exc:
            raise ConfigError(
                "runtime = oakestra needs httpx: pip install 'flops-mqtt[oakestra]'"
            ) from exc
        # The services are told the stack's broker and CA unless [oakestra] says otherwise.
        self.oakestra = OakestraRuntime(
            load_oakestra_settings(),
            transport=transport,
            broker=wiring.link_address,
            ca_file=wiring.ca_file,
        )
        self.runtime: Runtime = self.oakestra
        self.observers: ObserverHost | None = None
        self.inventory: Inventory | None = None
        self.poller = StatusPoller(
            self.oakestra,
            lambda: store.services_to_run(settings.identifier),
            on_status,
            settings.status_poll_interval,
        )

    async def prepare(self, tasks: asyncio.TaskGroup) -> None:
        """Nothing to prepare."""

    async def run(self, stop: asyncio.Event) -> None:
        """Poll the statuses until ``stop``."""
        await self.poller.run(stop)

    async def drain(self) -> None:
        """Nothing to drain: the services keep running on Oakestra."""

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.oakestra.aclose()


def open_backend(
    settings: StackSettings,
    wiring: Wiring,
    link: Link,
    store: Store,
    emit: Emit,
    alive: Alive,
    on_status: StatusSink,
    *,
    logs: LogStore | None = None,
    oakestra_transport: httpx.AsyncBaseTransport | None = None,
    accounts: ProjectAccounts | None = None,
) -> Backend:
    """The backend of ``settings.runtime``; ``logs`` is needed by ``local`` only.

    ``accounts``: the training actors' broker accounts (the embedded secure mode); the
    local and process runtimes give them to the actors, Oakestra's keep the services' own.
    """
    if settings.runtime == "process":
        return ProcessBackend(settings, wiring, on_status, accounts)
    if settings.runtime == "oakestra":
        return OakestraBackend(settings, wiring, store, on_status, oakestra_transport)
    if logs is None:
        raise ConfigError("the local runtime needs the observer log store")
    return LocalBackend(settings, link, logs, emit, alive, on_status, wiring, accounts)

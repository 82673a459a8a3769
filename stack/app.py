"""Compose and run the embedded default stack until asked to stop.

Start order matters: observers registered before the link subscribes (so events queued by
the broker while we were down find them), services restored, the link started, then
unfinished project starts resumed. Stop order drains: no new messages, in-flight handlers
finish, queued events are written, services stop, stores close, the broker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from broker import codec, topics
from broker.link import Link
from broker.messages import Event, InstanceStatus
from broker.server import EmbeddedBroker, start_embedded
from core.errors import ConfigError
from manager import lifecycle
from manager.deps import Deps, stable_event_id
from manager.service import ManagerService
from manager.sqlite_store import SqliteStore
from manager.store import ServiceSpec, Store
from observer.host import ObserverHost
from observer.store import LogStore
from stack import secure
from stack.discovery import StackCard, process_start, remove_card, write_card
from stack.runtime import LocalRuntime
from stack.settings import StackSettings

log = logging.getLogger(__name__)


async def run_stack(
    settings: StackSettings, stop: asyncio.Event, ready: Callable[[StackCard], None] | None = None
) -> None:
    """Run broker (unless external), manager and local runtime until ``stop`` is set."""
    broker: EmbeddedBroker | None = None
    if settings.broker == "external":
        wiring = secure.external(settings)
    else:
        files = secure.prepare(settings) if settings.secure else None
        broker = await start_embedded(
            settings.data_dir / "broker", settings.broker_port, settings.broker, files
        )
        wiring = secure.embedded(broker.address, files)
    try:
        await _run_services(settings, wiring, broker, stop, ready)
    finally:
        remove_card(settings.data_dir, os.getpid())
        if broker is not None:
            await broker.stop()


async def open_store(settings: StackSettings) -> Store:
    """The manager store the settings name: SQLite in the data dir, or MongoDB."""
    if settings.store == "sqlite":
        return await SqliteStore.open(settings.data_dir / "manager.db")
    try:
        from manager.mongo_store import MongoStore  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ConfigError("store = mongodb needs PyMongo: pip install 'flops-mqtt[mongo]'") from exc
    database = urlsplit(settings.mongo_url).path.strip("/") or "flops"
    return await MongoStore.open(settings.mongo_url, database)


async def _run_services(
    settings: StackSettings,
    wiring: secure.Wiring,
    broker: EmbeddedBroker | None,
    stop: asyncio.Event,
    ready: Callable[[StackCard], None] | None,
) -> None:
    store = await open_store(settings)
    logs = await LogStore.open(settings.data_dir / "observer.db")
    link = Link(wiring.link_address, settings.identifier, credentials=wiring.credentials)

    async def emit(user: str, event: Event) -> None:
        if observers.hosts(event.project_id):
            # Its observer runs here: stored by it, then applied by the manager, directly.
            # As durable as the broker's acknowledgement, and four messages fewer per event.
            await observers.record(user, event)
            await lifecycle.apply_event(user, event.project_id, event, deps)
            return
        await link.publish(topics.events(user, event.project_id), codec.encode(event))

    async def on_status(spec: ServiceSpec, status: InstanceStatus) -> None:
        log.info("service %s is now %s", spec.name, status)
        await store.set_instance_status(spec.id, status)
        if status is InstanceStatus.FAILED:  # a crashed service must not leave its project hanging
            await lifecycle.service_failed(spec, deps)

    observers = ObserverHost(
        link, logs, lambda sid: stable_event_id(sid, "started"), answer_unknown=not settings.cluster
    )

    def alive(names: list[str]) -> None:
        for name in names:
            deps.liveness.heard(name)

    runtime = LocalRuntime(observers, emit, alive, on_status)
    deps = Deps(
        store,
        runtime,
        emit,
        settings.registry,
        settings.git_timeout,
        settings.service_deadline,
        host=settings.identifier,
    )
    manager = ManagerService(
        link, deps, shared_group="flops-managers" if settings.cluster else None
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            writer = tasks.create_task(observers.write_forever())
            await observers.load()
            for spec in await store.services_to_run(settings.identifier):
                await runtime.deploy(spec)

            async def drained() -> None:
                log.info("stopping: stopping services, writing queued events")
                await runtime.stop()
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                await observers.flush()

            link_task = tasks.create_task(link.run(stop, drained))
            await link.wait_connected(15.0)
            tasks.create_task(manager.resume())  # ready at once; interrupted starts catch up
            tasks.create_task(manager.watchdog(stop))
            tasks.create_task(store.maintain(stop))
            tasks.create_task(logs.maintain(stop))
            tasks.create_task(runtime.report_alive(stop, settings.service_deadline / 4))
            card = StackCard(
                os.getpid(),
                wiring.address.host,
                wiring.address.port,
                broker.kind if broker else "external",
                time.time(),
                process_start(os.getpid()),
                str(wiring.ca_file or ""),
                (broker.pid if broker else None) or 0,
            )
            write_card(settings.data_dir, card)
            log.info(
                "FLOps stack ready: broker %s%s, data in %s",
                wiring.address,
                " (TLS)" if wiring.ca_file else "",
                settings.data_dir,
            )
            if ready is not None:
                ready(card)
            await link_task  # returns once stop is set, the handlers and services drained
    finally:
        await logs.close()
        await store.close()

"""Compose and run the embedded default stack until asked to stop.

Start order matters: observers registered before the link subscribes (so events queued by
the broker while we were down find them), services restored, the link started, then
unfinished project starts resumed. Where services run is the runtime backend's business
(``stack.backends``: in this process, as child processes, or on Oakestra). Stop order
drains: no new messages, in-flight handlers finish, queued events are written, services
stop, stores close, the broker stops.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from broker.accounts import ProjectAccounts
from broker.server import EmbeddedBroker, start_embedded
from core.errors import ConfigError, DeployError
from manager import events, lifecycle
from manager.deps import Deps, Quotas
from manager.pipeline import PIPELINES, Pipeline
from manager.pipeline import Settings as StageSettings
from manager.service import ManagerService
from manager.store.interface import Store
from manager.store.sqlite import SqliteStore
from mqtt.link import Link
from mqtt.wiring import Wiring
from protocol import codec, topics
from protocol.events import Event
from protocol.states import ENDED_BADLY, InstanceStatus
from runtimes.base import Runtime
from services.observer.store import LogStore
from services.spec import ServiceSpec
from stack import secure
from stack.backends import Backend, open_backend
from stack.discovery import StackCard, process_start, remove_card, write_card
from stack.settings import StackSettings

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


async def run_stack(
    settings: StackSettings,
    stop: asyncio.Event,
    ready: Callable[[StackCard], None] | None = None,
    *,
    oakestra_transport: httpx.AsyncBaseTransport | None = None,
    pipeline: Pipeline | None = None,
) -> None:
    """Run broker (unless external), manager and runtime until ``stop`` is set.

    ``oakestra_transport`` replaces the HTTP transport of the Oakestra runtime (tests);
    ``pipeline`` the stages projects go through (``manager.pipeline``; by default the
    ``stages`` setting's).
    """
    broker: EmbeddedBroker | None = None
    accounts: ProjectAccounts | None = None  # the training actors' (secure mode)
    if settings.broker == "external":
        wiring = secure.external(settings)
    else:
        files = secure.prepare(settings) if settings.secure else None
        broker = await start_embedded(
            settings.data_dir / "broker", settings.broker_port, settings.broker, files
        )
        wiring = secure.embedded(broker.address, files)
        if files is not None:
            accounts = secure.actor_accounts(settings.data_dir, broker, files)
    try:
        chosen = pipeline or PIPELINES[settings.stages]
        await _run_services(
            settings, wiring, broker, stop, ready, oakestra_transport, chosen, accounts
        )
    finally:
        remove_card(settings.data_dir, os.getpid())
        if broker is not None:
            await broker.stop()


async def open_store(settings: StackSettings) -> Store:
    """The manager store the settings name: SQLite in the data dir, or MongoDB."""
    if settings.store == "sqlite":
        return await SqliteStore.open(settings.data_dir / "manager.db")
    try:
        from manager.store.mongo import MongoStore  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ConfigError("store = mongodb needs PyMongo: pip install 'flops-mqtt[mongo]'") from exc
    database = urlsplit(settings.mongo_url).path.strip("/") or "flops"
    return await MongoStore.open(settings.mongo_url, database)


async def _run_services(
    settings: StackSettings,
    wiring: Wiring,
    broker: EmbeddedBroker | None,
    stop: asyncio.Event,
    ready: Callable[[StackCard], None] | None,
    oakestra_transport: httpx.AsyncBaseTransport | None,
    pipeline: Pipeline,
    accounts: ProjectAccounts | None,
) -> None:
    store = await open_store(settings)
    local = settings.runtime == "local"
    logs = await LogStore.open(settings.data_dir / "observer.db") if local else None
    link = Link(
        wiring.link_address, wiring.client_id(settings.identifier), credentials=wiring.credentials
    )

    async def emit(user: str, event: Event) -> None:
        observers = backend.observers
        if observers is not None and observers.hosts(event.project_id):
            # Its observer runs here: stored by it, then applied by the manager, directly.
            # As durable as the broker's acknowledgement, and four messages fewer per event.
            await observers.record(user, event)
            await events.on_event(user, event.project_id, event, deps)
            return
        await link.publish(topics.events(user, event.project_id), codec.encode(event))

    def queue(user: str, event: Event) -> asyncio.Future[None] | None:
        # The manager's own event, for a log this process keeps: queued for it at once. Not
        # applied again: it reports what the manager's store holds already.
        observers = backend.observers
        if observers is not None and observers.hosts(event.project_id):
            return observers.queue(user, event)
        return None

    async def on_status(spec: ServiceSpec, status: InstanceStatus) -> None:
        log.info("service %s is now %s", spec.name, status)
        await store.set_instance_status(spec.id, status)
        if status in ENDED_BADLY:  # a crashed service must not leave its project hanging
            await lifecycle.service_failed(spec, deps)

    def alive(names: list[str]) -> None:
        for name in names:
            deps.liveness.heard(name)

    try:
        backend = open_backend(
            settings, wiring, link, store, emit, alive, on_status, logs=logs,
            oakestra_transport=oakestra_transport, accounts=accounts,
        )  # fmt: skip
    except BaseException:
        await _close(logs, store)
        raise
    deps = Deps(
        store,
        backend.runtime,
        emit,
        stage_settings(settings),
        settings.service_deadline,
        host=settings.identifier,
        quotas=Quotas(settings.max_live_projects, settings.max_starts_per_minute),
        repo_roots=settings.repo_roots(),
        pipeline=pipeline,
        queue=queue,
    )
    requests = _requests_link(settings, wiring)
    manager = ManagerService(
        link,
        deps,
        shared_group=wiring.client_id("flops-managers") if settings.cluster else None,
        requests=requests,
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            await backend.prepare(tasks)
            unrestored = await _restore(store, settings.identifier, backend.runtime)

            requests_task = tasks.create_task(requests.run(stop)) if requests else None

            async def drained() -> None:
                if requests_task is not None:  # its handlers answer through the link
                    await requests_task
                log.info("stopping: stopping services, writing queued events")
                await backend.drain()

            link_task = tasks.create_task(link.run(stop, drained))
            await link.wait_connected(15.0)
            if requests is not None:
                await requests.wait_connected(15.0)
            for spec in unrestored:  # connected now: their projects' failure can be told
                await on_status(spec, InstanceStatus.FAILED)
            _background(tasks, settings, stop, manager, backend, [store, logs])
            _announce(tasks, settings, wiring, broker, stop, ready)
            await link_task  # returns once stop is set, the handlers and services drained
    finally:
        await backend.close()
        await _close(logs, store)


def stage_settings(settings: StackSettings) -> StageSettings:
    """What the stages hand their services, from the stack's settings."""
    return StageSettings(
        registry=settings.registry,
        git_timeout=settings.git_timeout,
        data_dir=str(settings.data_dir.resolve()),
        repo_sources=dict(settings.repo_sources),
        build_progress_interval=settings.build_progress_interval,
        build_timeout=settings.build_timeout,
        training_clusters=settings.training_clusters,
        training=settings.training,
        inference_host=settings.inference_host,
        inference_port=settings.inference_port,
        mlflow_tracking=settings.mlflow_tracking,
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
    )


def _background(
    tasks: asyncio.TaskGroup,
    settings: StackSettings,
    stop: asyncio.Event,
    manager: ManagerService,
    backend: Backend,
    stores: list[Store | LogStore | None],
) -> None:
    """The stack's work besides messages, until ``stop``."""
    tasks.create_task(manager.resume())  # ready at once; interrupted starts catch up
    tasks.create_task(manager.watchdog(stop))
    if settings.cluster and backend.inventory is not None:
        # Another replica may answer a stop or delete of a project that runs here.
        interval = settings.reconcile_interval
        tasks.create_task(manager.reconcile_forever(stop, backend.inventory, interval))
    for store in stores:
        if store is not None:
            tasks.create_task(store.maintain(stop))
    tasks.create_task(backend.run(stop))


def _announce(
    tasks: asyncio.TaskGroup,
    settings: StackSettings,
    wiring: Wiring,
    broker: EmbeddedBroker | None,
    stop: asyncio.Event,
    ready: Callable[[StackCard], None] | None,
) -> None:
    """Write the card the CLI finds the stack by, keep it true, and say the stack is ready."""
    # What start-up made (modules, models, settings) lives as long as the stack: kept out
    # of the collector's full passes, which then walk only what requests make.
    gc.freeze()
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
    if broker is not None:
        # A broker that dies comes back on its port; the card names its new process.
        tasks.create_task(broker.supervise(stop, _card_refresher(settings, card, broker)))
    log.info(
        "FLOps stack ready: broker %s%s, data in %s, %s runtime",
        wiring.address,
        " (TLS)" if wiring.ca_file else "",
        settings.data_dir,
        settings.runtime
        + (
            " (benchmark runtime: services recorded, not run)"
            if settings.bench_record_services
            else ""
        ),
    )
    if ready is not None:
        ready(card)


def _requests_link(settings: StackSettings, wiring: Wiring) -> Link | None:
    """A replica's own connection for its share of the requests, in a clean session.

    The broker drops a clean session, and its place in the shared subscription, the moment
    the replica's connection dies, so no request waits in a dead replica's queue; one in
    flight to it is lost and the client's resend (after 1 to 2 s) reaches a live replica. Events,
    log queries and heartbeats stay on the persistent link: they wait while a stack is down.
    """
    if not settings.cluster:
        return None  # alone, requests wait in the persistent session until it is back
    return Link(
        wiring.link_address,
        wiring.client_id(settings.identifier + "-requests"),  # private, as the link's
        credentials=wiring.credentials,
        persistent=False,
    )


def _card_refresher(
    settings: StackSettings, card: StackCard, broker: EmbeddedBroker
) -> Callable[[], None]:
    def restarted() -> None:
        write_card(settings.data_dir, replace(card, broker_pid=broker.pid or 0))

    return restarted


async def _restore(store: Store, host: str, runtime: Runtime) -> list[ServiceSpec]:
    """Start again the services that ran before the stop; return those that cannot start."""
    failed = []
    for spec in await store.services_to_run(host):
        try:
            await runtime.deploy(spec)
        except DeployError as exc:
            log.warning("service %s not restored: %s", spec.name, exc)
            failed.append(spec)
    return failed


async def _close(logs: LogStore | None, store: Store) -> None:
    if logs is not None:
        await logs.close()
    await store.close()

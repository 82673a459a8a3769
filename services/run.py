"""One FLOps service in a process of its own: ``flops service run``.

An orchestrator (the process runtime here, Oakestra elsewhere) starts it with the
``FLOPS_SERVICE_*`` variables. An observer keeps one project's log in its data dir: it takes
the project's events, stores them, publishes the live log, answers the project's log
queries and sends heartbeats until stopped. Every other kind (``services.kinds``) runs its
entry once: it reports over MQTT and ends with exit code 0, or 1 when it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from broker.accounts import ActorAccount
from core.errors import ConfigError, FlopsError
from mqtt.link import BrokerAddress, Link
from mqtt.wiring import Wiring, connect_to
from protocol import codec, topics
from protocol.events import Event, Heartbeat, event_id
from services.context import ServiceContext, Shared
from services.kinds import ServiceKind, kind_of
from services.observer.host import Hosted, ObserverHost
from services.observer.store import LogStore
from services.settings import ServiceSettings
from services.spec import ServiceSpec

log = logging.getLogger(__name__)
READY = "flops-service-ready"  # the line a service prints once it is subscribed
EXIT_DONE, EXIT_FAILED = 0, 1
CONNECT_TIMEOUT = 15.0


def services_wiring(settings: ServiceSettings) -> Wiring:
    """How the service reaches the broker as a service.

    TLS with ``ca_file`` or ``ca_pem`` (the CA's certificate as text, as Oakestra's SLA
    passes it), with the client certificate and key if they are given.
    """
    return connect_to(
        settings.broker_host,
        settings.broker_port,
        settings.ca_file,
        settings.cert_file,
        settings.key_file,
        ca_pem=settings.ca_pem,
    )


def actor_wiring(settings: ServiceSettings) -> Wiring:
    """How a training actor's own client reaches the broker (``ServiceContext.broker``).

    In the secure mode the runtime names its project's account (``train_password_file``,
    ``train_port``: ``broker.accounts``); otherwise the services' wiring.
    """
    if settings.train_password_file is None:
        return services_wiring(settings)
    if settings.train_port is None or settings.ca_file is None:
        raise ConfigError("FLOPS_TRAIN_PASSWORD_FILE needs FLOPS_TRAIN_PORT and FLOPS_CA_FILE")
    address = BrokerAddress(settings.broker_host, settings.train_port)
    project = settings.service.project_id
    return ActorAccount(address, project, settings.train_password_file, settings.ca_file).wiring()


def make_link(settings: ServiceSettings) -> Link:
    """The service's MQTT link: a persistent session under its service name made private."""
    wiring = services_wiring(settings)
    return Link(
        wiring.link_address, wiring.client_id(settings.service.name), credentials=wiring.credentials
    )


async def run_service(
    settings: ServiceSettings, stop: asyncio.Event, ready: Callable[[], None] | None = None
) -> int:
    """Run the service until it ends or ``stop`` is set; return the process exit code."""
    ready = ready or (lambda: None)
    async with asyncio.TaskGroup() as tasks:
        if settings.exit_with_parent:
            tasks.create_task(_stop_when_orphaned(stop))
        kind = kind_of(settings.service.kind)
        if kind.entry is None:
            code = await run_observer(settings, stop, ready)
        else:
            code = await run_task(settings, kind, stop, ready)
        stop.set()
    return code


async def run_observer(
    settings: ServiceSettings, stop: asyncio.Event, ready: Callable[[], None]
) -> int:
    """Observe one project until ``stop``: its events in, its log out, heartbeats."""
    me = settings.service
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logs = await LogStore.open(settings.data_dir / "observer.db")
    link = make_link(settings)
    host = ObserverHost(
        link,
        logs,
        lambda sid: event_id(sid, "started"),
        events=str(topics.events(me.user, me.project_id)),
        queries=str(topics.log_query(me.user, me.project_id)),
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            writer = tasks.create_task(host.write_forever())
            await host.load()
            # Registered (and its start logged) before the link subscribes: no event of the
            # project that the broker queued for this session is dropped as unknown.
            await host.deploy(Hosted(me.project_id, me.user, me.id, me.name))

            async def drained() -> None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                await host.flush()

            link_task = tasks.create_task(link.run(stop, drained))
            await link.wait_connected(CONNECT_TIMEOUT)
            tasks.create_task(_heartbeats(link, settings, stop))
            tasks.create_task(logs.maintain(stop))
            ready()
            await link_task
    finally:
        await logs.close()
    return EXIT_DONE


async def run_task(
    settings: ServiceSettings,
    kind: ServiceKind[Any],
    stop: asyncio.Event,
    ready: Callable[[], None],
) -> int:
    """Run the entry of ``kind`` once; 0 when it ended or was stopped, 1 when it failed."""
    me = settings.service
    try:
        config = kind.validated(me.config)
    except ConfigError as exc:
        raise ConfigError(f"FLOPS_SERVICE_CONFIG is {exc}") from exc
    assert kind.entry is not None  # noqa: S101 - run_service runs the observer itself
    entry = kind.entry
    link = make_link(settings)
    wiring = actor_wiring(settings) if kind.trains else services_wiring(settings)
    code = EXIT_DONE
    spec = ServiceSpec(me.id, me.name, me.kind, me.user, me.project_id, "", me.config)

    async def emit(event: Event) -> None:
        await link.publish(topics.events(me.user, me.project_id), codec.encode(event))

    async def beat() -> None:
        await _beat(link, settings)

    async def work() -> None:
        nonlocal code
        try:
            await entry(
                ServiceContext(spec, config, emit, beat, Shared(), settings.data_dir, wiring)
            )
        except FlopsError as exc:
            log.warning("%s failed: %s", me.name, exc)
            code = EXIT_FAILED
        finally:
            stop.set()  # the link drains and the process ends

    async with asyncio.TaskGroup() as tasks:
        link_task = tasks.create_task(link.run(stop))
        await link.wait_connected(CONNECT_TIMEOUT)
        ready()
        job = tasks.create_task(work())
        await stop.wait()
        job.cancel()
        await link_task
    return code


async def _beat(link: Link, settings: ServiceSettings) -> None:
    me = settings.service
    beat = Heartbeat(source=me.name)
    link.publish_nowait(topics.heartbeat(me.user, me.project_id), codec.encode(beat))


async def _heartbeats(link: Link, settings: ServiceSettings, stop: asyncio.Event) -> None:
    """A heartbeat now and every ``heartbeat_interval`` until ``stop``."""
    while not stop.is_set():
        await _beat(link, settings)
        await _wait(stop, settings.heartbeat_interval)


async def _stop_when_orphaned(stop: asyncio.Event, interval: float = 0.5) -> None:
    """Set ``stop`` when the parent process is gone (this process was re-parented)."""
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the parent process %d is gone: stopping", parent)
            stop.set()
            return
        await _wait(stop, interval)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()

"""The MQTT connection of a long-running FLOps process.

One ``Link`` per process, passed down, never global. It connects (``mqtt.client``, with
TCP_NODELAY) with a persistent session, reconnects with backoff, subscribes again after
every connect, routes each message to every matching handler, and acknowledges a QoS 1
message only after all of them are done with it (manual acks): a crash before that means
the broker delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, TypeVar, cast

from pydantic import BaseModel

from core.aio import race
from core.errors import BrokerError
from core.logs import shown
from mqtt.client import Connection, MqttError, Options, connect
from mqtt.wire import Publish
from protocol import codec, topics

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
M = TypeVar("M", bound=BaseModel)
# Received messages waiting for dispatch: reading pauses past either bound, and resumes once
# the queue is back under both of the lower ones.
QUEUE_HIGH = 10_000
QUEUE_HIGH_BYTES = 32 * 1024 * 1024
QUEUE_LOW = 1_000
QUEUE_LOW_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens."""

    host: str = "127.0.0.1"
    port: int = 1883

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """How a client proves who it is: a user name and password, and/or TLS.

    ``__repr__`` hides the password, so it never reaches a log line.
    """

    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, tls={self.tls is not None})"


def make_client(
    address: BrokerAddress,
    identifier: str,
    *,
    persistent: bool,
    timeout: float = 10.0,
    credentials: Credentials | None = None,
) -> aiomqtt.Client:
    """An aiomqtt client in MQTT 3.1.1 with TCP_NODELAY: a second, independent client.

    Not the stack's (that is ``mqtt.client``): tests and the benchmark's baselines use it to
    talk to the stack as any other client would. Imported here, not with the module: the
    CLI imports this module and needs neither aiomqtt nor paho (~60 ms of imports).
    """
    import aiomqtt  # noqa: PLC0415

    creds = credentials or Credentials()
    client = aiomqtt.Client(
        address.host,
        address.port,
        username=creds.username,
        password=creds.password,
        tls_context=creds.tls,
        identifier=identifier,
        clean_session=not persistent,
        protocol=aiomqtt.ProtocolVersion.V311,
        socket_options=NODELAY,
        timeout=timeout,
        max_inflight_messages=1000,
    )
    if not logging.getLogger("mqtt").isEnabledFor(logging.DEBUG):
        # paho logs several lines per packet at DEBUG, each costing an enum lookup and a
        # logging call even when nothing is printed (4 % of the observer's CPU, measured).
        client._client.disable_logger()  # noqa: SLF001 - aiomqtt has no option for it
    return client


class Inbound:
    """A received message; acknowledged once every handler released it."""

    __slots__ = ("_ack", "_decoded", "_holds", "_parsed", "payload", "qos", "topic")

    def __init__(self, topic: str, payload: bytes, qos: int, ack: Callable[[], None]) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self._ack = ack
        self._holds = 0
        self._parsed: topics.Topic | topics.TopicError | None = None
        self._decoded: dict[type[BaseModel], BaseModel | codec.MessageError] = {}

    def parsed_topic(self) -> topics.Topic:
        """``topics.Topic.parse(self.topic)``, parsed once for all the handlers."""
        if self._parsed is None:
            try:
                self._parsed = topics.Topic.parse(self.topic)
            except topics.TopicError as exc:
                self._parsed = exc
        if isinstance(self._parsed, topics.TopicError):
            raise self._parsed
        return self._parsed

    def decode(self, model: type[M]) -> M:
        """``codec.decode(model, self.payload)``, decoded once for all the handlers.

        Handlers must not change the model they get: the next handler gets the same object.
        """
        found = self._decoded.get(model)
        if found is None:
            try:
                found = codec.decode(model, self.payload)
            except codec.MessageError as exc:
                found = exc
            self._decoded[model] = found
        if isinstance(found, codec.MessageError):
            raise found
        return cast(M, found)

    def hold(self) -> Callable[[], None]:
        """Delay the acknowledgement; call the returned function (once) to release."""
        self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._holds -= 1
                if self._holds == 0:
                    self._ack()

        return release


Handler = Callable[[Inbound], Awaitable[None]]


@dataclass(slots=True)
class _Route:
    topic_filter: str
    subscription: str  # the filter, or $share/<group>/<filter> for a shared subscription
    handler: Handler
    concurrent: bool


@dataclass
class Link:
    """A persistent, self-healing MQTT connection with topic routing.

    ``persistent=False`` gives a clean session: the broker forgets it, and its
    subscriptions, the moment it disconnects (a replica's share of the requests).
    """

    address: BrokerAddress
    identifier: str
    max_concurrent: int = 256
    credentials: Credentials | None = None
    persistent: bool = True
    _routes: list[_Route] = field(default_factory=list)
    _conn: Connection | None = None
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _limit: asyncio.Semaphore = field(init=False)
    _queue: deque[Inbound] = field(default_factory=deque)  # received, not yet dispatched
    _wake: asyncio.Future[None] | None = None  # the dispatcher waits for a message
    _queued_bytes: int = 0  # payload bytes in _queue
    _paused: Connection | None = None  # reading paused: the queue is full

    def __post_init__(self) -> None:
        self._limit = asyncio.Semaphore(self.max_concurrent)

    def route(
        self,
        topic_filter: str,
        handler: Handler,
        *,
        concurrent: bool = False,
        shared_group: str | None = None,
    ) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler``.

        With ``shared_group`` the broker hands each message to one member of the group (an
        MQTT shared subscription), so several replicas share the load.

        Ordered handlers are awaited one message at a time, in arrival order, and must be
        quick; concurrent ones run as tasks, at most ``max_concurrent`` at once.
        """
        subscription = f"$share/{shared_group}/{topic_filter}" if shared_group else topic_filter
        self._routes.append(_Route(topic_filter, subscription, handler, concurrent))

    def publish_nowait(self, topic: str | topics.Topic, payload: bytes) -> bool:
        """Hand a QoS 0 message to the connection without waiting; say whether it was queued.

        For derived streams whose readers recover gaps themselves (the live log).
        """
        conn = self._conn
        if conn is None or not self._connected.is_set() or len(payload) > codec.MAX_PAYLOAD:
            return False
        return conn.publish_nowait(str(topic), payload)

    async def publish(self, topic: str | topics.Topic, payload: bytes, *, qos: int = 1) -> None:
        """Publish and, for QoS 1, wait for the broker's acknowledgement; waits out reconnects.

        A payload over ``codec.MAX_PAYLOAD`` is refused here: the broker would drop the
        whole connection for a packet over its limit.
        """
        if len(payload) > codec.MAX_PAYLOAD:
            raise BrokerError(
                f"not published on {topic}: {len(payload)} bytes is over {codec.MAX_PAYLOAD}"
            )
        while True:
            while not self._connected.is_set():
                if self._stopping:
                    raise BrokerError(f"cannot publish to {self.address}: the link is closed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._connected.wait()
            conn = self._conn
            if conn is None:
                continue
            try:
                await conn.publish(str(topic), payload, qos=qos)
            except MqttError as exc:
                if self._stopping:
                    raise BrokerError(f"cannot publish to {self.address}: {exc}") from exc
                log.warning("publish on %s failed (%s); retrying after reconnect", topic, exc)
                self._connected.clear()
                await asyncio.sleep(0.05)
            else:
                return

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the first connection is up or raise ``BrokerError``."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            raise BrokerError(f"no MQTT broker reachable at {self.address}") from None

    async def run(
        self, stop: asyncio.Event, drained: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Connect, subscribe and dispatch until ``stop`` is set, reconnecting with backoff.

        On ``stop`` it reads no more messages, lets the handlers in flight finish (they may
        still publish), awaits ``drained`` (still connected), then disconnects; unread
        messages stay with the broker. Stopped while the broker is away, it does the same
        without waiting for it: every publish that would wait for a connection fails at
        once, so a stack whose broker is gone still shuts down.
        """
        dispatcher = asyncio.create_task(self._dispatch())
        backoff = 0.1
        try:
            while not stop.is_set():
                conn: Connection | None = None
                try:
                    attempt, _ = await race(self._connect(), stop.wait())
                    if attempt.cancelled():
                        break  # stopped while connecting
                    conn = attempt.result()
                    self._conn = conn
                    self._paused = None  # a lost connection's pause ended with it
                    if self._routes:
                        await conn.subscribe([r.subscription for r in self._routes], 10.0)
                    self._connected.set()
                    log.info("connected to %s as %s", self.address, self.identifier)
                    backoff = 0.1
                    lost, _ = await race(_lost(conn), stop.wait())
                    if not lost.cancelled():
                        lost.result()  # raises MqttError: reconnect
                    await _cancelled(dispatcher)  # read no more
                    self._stopping = True  # a publish fails from now on if the broker goes
                    await self._drain()
                    if drained is not None:
                        await drained()  # still connected: the last publishes go out
                        drained = None
                    await conn.close()
                except MqttError as exc:
                    self._connected.clear()
                    if conn is not None:
                        conn.abort()
                    if stop.is_set():
                        break
                    log.warning(
                        "broker %s: %s; reconnecting in %.1fs",
                        self.address,
                        explain(exc, self.address, self.credentials),
                        backoff,
                    )
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(backoff):
                            await stop.wait()
                    backoff = min(backoff * 2, 5.0)
        finally:
            await _cancelled(dispatcher)
            self._connected.clear()
        self._stopping = True
        await self._drain()
        if drained is not None:  # stopped while the broker was away
            await drained()

    async def _connect(self) -> Connection:
        creds = self.credentials or Credentials()
        opts = Options(
            self.identifier,
            clean=not self.persistent,
            username=creds.username,
            password=creds.password,
        )
        return await connect(
            self.address.host, self.address.port, opts, self._received, tls=creds.tls
        )

    def _received(self, conn: Connection, message: Publish) -> None:
        """Queue a message for the dispatcher (called for each message as it is read)."""
        ack = partial(conn.ack, message.packet_id) if message.qos else _nothing
        self._queue.append(Inbound(message.topic, message.payload, message.qos, ack))
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)
        self._queued_bytes += len(message.payload)
        full = len(self._queue) >= QUEUE_HIGH or self._queued_bytes >= QUEUE_HIGH_BYTES
        if full and self._paused is None:
            conn.pause_reading()
            self._paused = conn

    async def _dispatch(self) -> None:
        """Hand the received messages to their handlers, in arrival order."""
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            while not queue:
                self._wake = loop.create_future()
                await self._wake
            inbound = queue.popleft()
            self._queued_bytes -= len(inbound.payload)
            if (
                self._paused is not None
                and len(queue) <= QUEUE_LOW
                and self._queued_bytes <= QUEUE_LOW_BYTES
            ):
                self._paused.resume_reading()
                self._paused = None
            release = inbound.hold()
            for route in self._routes:
                if not topics.matches(route.topic_filter, inbound.topic):
                    continue
                if route.concurrent:
                    await self._limit.acquire()
                    task = asyncio.create_task(_run(route.handler, inbound, self._limit.release))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
                else:
                    await _run(route.handler, inbound, None)
            release()

    async def _drain(self, timeout: float = 15.0) -> None:
        """Wait for the concurrent handlers still running, then cancel the stragglers.

        A handler cancelled here has not acknowledged its message: the broker delivers it
        again at the next start, so a broker that is gone cannot hold a shutdown forever.
        """
        if not self._inflight:
            return
        _, late = await asyncio.wait(set(self._inflight), timeout=timeout)
        while late:
            log.warning("cancelling %d handlers still running after %.0fs", len(late), timeout)
            for task in late:
                task.cancel()
            _, late = await asyncio.wait(late, timeout=1.0)


def _nothing() -> None:
    """The acknowledgement of a QoS 0 message."""


async def _lost(conn: Connection) -> None:
    """Return never: raise ``MqttError`` once the connection ends, however it ended."""
    await conn.wait_closed()
    raise MqttError("the broker closed the connection")


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def explain(exc: Exception, address: BrokerAddress, creds: Credentials | None) -> str:
    """One line on why a connection failed, in the user's terms."""
    text = str(exc)
    who = f"user {creds.username!r}" if creds and creds.username else "this client"
    rc = getattr(exc, "rc", None)
    refused = rc in (4, 5, 134, 135) or "not authori" in text.lower() or "password" in text.lower()
    if refused and creds is not None and creds.password:
        return f"the broker at {address} refused {who}: wrong user name or password"
    if refused:
        return f"the broker at {address} refused {who}: it needs a user name and password"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"the broker at {address} is not trusted: its certificate does not verify ({text})"
    if any(s in text for s in ("WRONG_VERSION_NUMBER", "record layer failure", "PROTOCOL")):
        return f"the broker at {address} does not speak TLS on this port ({text})"
    return f"cannot reach the MQTT broker at {address}: {text}"


async def _run(handler: Handler, inbound: Inbound, done: Callable[[], None] | None) -> None:
    release = inbound.hold()
    try:
        await handler(inbound)
    except asyncio.CancelledError:
        # Shutting down: leave the message unacknowledged so the broker delivers it again.
        raise
    except Exception:
        # A handler bug must not take the connection down; the message is dropped and logged.
        log.exception(
            "handler %s failed on %s", getattr(handler, "__name__", handler), shown(inbound.topic)
        )
        release()
    else:
        release()
    finally:
        if done is not None:
            done()

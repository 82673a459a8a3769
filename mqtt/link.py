"""The MQTT connection of a long-running FLOps process.

One ``Link`` per process, passed down, never global. It connects with TCP_NODELAY and a
persistent session, reconnects with backoff (aiomqtt 2.x does not), subscribes again after
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
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from pydantic import BaseModel

from core.aio import race
from core.errors import BrokerError
from core.logs import shown
from protocol import codec, topics

log = logging.getLogger(__name__)
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
M = TypeVar("M", bound=BaseModel)


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
    """An aiomqtt client in MQTT 3.1.1 (so a 3.1.1-only broker works too) with TCP_NODELAY."""
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
    _client: aiomqtt.Client | None = None
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _limit: asyncio.Semaphore = field(init=False)

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
        """Hand a QoS 0 message to the client without waiting; say whether it was queued.

        For derived streams whose readers recover gaps themselves (the live log).
        """
        client = self._client
        if client is None or not self._connected.is_set() or len(payload) > codec.MAX_PAYLOAD:
            return False
        info = client._client.publish(str(topic), payload, qos=0)  # noqa: SLF001 - see run()
        return info.rc == paho.MQTT_ERR_SUCCESS

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
            client = self._client
            if client is None:
                continue
            try:
                await client.publish(str(topic), payload, qos=qos)
            except aiomqtt.MqttError as exc:
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
        client = make_client(
            self.address, self.identifier, persistent=self.persistent, credentials=self.credentials
        )
        # aiomqtt does not expose manual acks; paho 2 does, on the client it wraps.
        client._client.manual_ack_set(True)  # noqa: SLF001
        _cork_writes(client._client)  # noqa: SLF001
        _write_at_end_of_turn(client._client, asyncio.get_running_loop())  # noqa: SLF001
        client.pending_calls_threshold = 10 * self.max_concurrent  # many publishes are normal
        backoff = 0.1
        while not stop.is_set():
            try:
                async with client:
                    self._client = client
                    for route in self._routes:
                        await client.subscribe(route.subscription, qos=1)
                    self._connected.set()
                    log.info("connected to %s as %s", self.address, self.identifier)
                    backoff = 0.1
                    await self._dispatch_until(client, stop)
                    self._stopping = True  # a publish fails from now on if the broker goes
                    await self._drain()
                    if drained is not None:
                        await drained()  # still connected: the last publishes go out
                        drained = None
            except aiomqtt.MqttError as exc:
                self._connected.clear()
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
        self._connected.clear()
        self._stopping = True
        await self._drain()
        if drained is not None:  # stopped while the broker was away
            await drained()

    async def _dispatch_until(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        reader, _ = await race(self._read(client), stop.wait())
        if not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]  # an MqttError: reconnect

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            inbound = _inbound(client, message)
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


def _cork_writes(client: paho.Client) -> None:
    """Send the packets queued during one loop turn as one TCP transmission.

    paho sends every queued packet with its own ``send``; with TCP_NODELAY each becomes a
    segment of its own, and on loopback the sender pays for the receiver's wake-up too. A
    batch of stored events queues one PUBACK and one live entry each: corked, the kernel
    sends them together when the last one is written. Linux only (TCP_CORK).
    """
    cork = getattr(socket, "TCP_CORK", None)
    if cork is None:
        return
    write = client.loop_write

    def loop_write() -> MQTTErrorCode:
        sock = client.socket()
        if not isinstance(sock, socket.socket) or len(client._out_packet) < 2:  # noqa: SLF001
            return write()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
        except OSError:
            return write()
        try:
            return write()
        finally:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, cork, 0)

    client.loop_write = loop_write  # type: ignore[method-assign]


def _write_at_end_of_turn(client: paho.Client, loop: asyncio.AbstractEventLoop) -> None:
    """Write the packets queued in one turn of the loop once, at its end, without epoll.

    aiomqtt answers paho's first queued packet by registering the socket for writability
    (through ``call_soon_threadsafe``: a wake-up byte through the loop's self-pipe), waits
    for epoll to report it writable, which it nearly always is, writes, and unregisters:
    five system calls and a turn of the loop before every write. Here the first packet of
    a turn schedules one (corked) write of all that the turn queued; only what the kernel
    cannot take at once waits for writability.
    """
    loop_thread = threading.get_ident()  # Link.run runs in the loop's thread
    scheduled = False
    waiting = False  # the socket was full: a writer is registered

    def flush() -> None:
        nonlocal scheduled, waiting
        scheduled = False
        try:
            client.loop_write()
        except OSError as exc:  # the connection broke: its reader reports it
            log.debug("write failed: %s", exc)
            return
        sock = client.socket()
        if client.want_write() and sock is not None:
            loop.add_writer(sock.fileno(), flush)
            waiting = True

    def register(_client: paho.Client, _userdata: object, _sock: object) -> None:
        nonlocal scheduled
        if scheduled:
            return
        scheduled = True
        if threading.get_ident() == loop_thread:
            loop.call_soon(flush)
        else:  # paho connects from aiomqtt's executor thread
            loop.call_soon_threadsafe(flush)

    def unregister(_client: paho.Client, _userdata: object, sock: paho.SocketLike) -> None:
        nonlocal waiting
        if waiting:
            waiting = False
            fileno = sock.fileno()
            if fileno > -1:
                loop.remove_writer(fileno)

    client.on_socket_register_write = register
    client.on_socket_unregister_write = unregister


def explain(exc: aiomqtt.MqttError, address: BrokerAddress, creds: Credentials | None) -> str:
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


def _inbound(client: aiomqtt.Client, message: aiomqtt.Message) -> Inbound:
    mid, qos = message.mid, message.qos
    paho_client = client._client  # noqa: SLF001 - see Link.run

    def ack() -> None:
        if qos > 0:
            rc = paho_client.ack(mid, qos)
            if rc != paho.MQTT_ERR_SUCCESS:
                log.debug("ack of %d not sent (%s); the broker will redeliver", mid, rc)

    payload = (
        message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
    )
    return Inbound(str(message.topic), payload, qos, ack)


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

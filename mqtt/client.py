"""One MQTT 3.1.1 connection on asyncio's transports: the client of every FLOps process.

Written for the stack's hot path (issue 15): asyncio reads what the socket holds in one
``recv`` and every packet in it is handled in that callback; a loop turn's packets leave in
one ``send`` at the turn's end. paho reads a packet's header a byte at a time and keeps
per-message bookkeeping (a lock, a condition, a message-info object) that this client does
not need; aiomqtt adds a queue and a task switch per message above it.

What it does: CONNECT (user name, password, TLS through the transport, clean or persistent
session), SUBSCRIBE, PUBLISH at QoS 0 or 1 (at most ``max_inflight`` unacknowledged, which
bounds the 16-bit packet ids), PUBACK sent when the caller says (manual acks), keepalive.
Received messages go to one callback, synchronously, in arrival order. Nothing reconnects
here: a lost connection fails every waiter with ``MqttError`` and completes ``closed``; the
owner (``mqtt.link.Link``, ``mqtt.requester.Session``) connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from core.aio import seen
from core.logs import Throttle, shown
from mqtt import wire

log = logging.getLogger(__name__)
OnMessage = Callable[["Connection", wire.Publish], None]
MAX_PACKET = 16 * 1024 * 1024  # the largest packet read; the broker's limit is lower
WRITE_BUFFER_LIMIT = 32 * 1024 * 1024  # queued bytes past which a QoS 0 message is dropped


class MqttError(Exception):
    """The connection failed, was refused (``rc``: CONNACK's return code) or was lost."""

    def __init__(self, message: str, rc: int | None = None) -> None:
        super().__init__(message)
        self.rc = rc


@dataclass(frozen=True, slots=True)
class Options:
    """How to connect: session, keepalive, bounds."""

    client_id: str
    clean: bool = True
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    max_inflight: int = 1000
    max_packet: int = MAX_PACKET


class Connection(asyncio.Protocol):
    """An open MQTT connection (``connect`` makes one)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_message: OnMessage, opts: Options
    ) -> None:
        self._loop = loop
        self._on_message = on_message
        self._opts = opts
        self._reader = wire.Reader(opts.max_packet)
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._connack: asyncio.Future[tuple[int, bool]] = loop.create_future()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # packet id → PUBACK/SUBACK body
        self._last_id = 0
        self._slots = asyncio.Semaphore(opts.max_inflight)
        self._writable = asyncio.Event()
        self._writable.set()
        self._pong_due: float | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._closing = False
        self.session_present = False
        self.closed: asyncio.Future[None] = loop.create_future()
        self.closed.add_done_callback(seen)
        self._dropped = Throttle(log)  # anyone may send them: a few lines a minute

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; TCP_NODELAY (asyncio sets it too, on TCP)."""
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        """Handle every packet that ``data`` completes."""
        self._pong_due = None  # the broker is alive
        try:
            for packet in self._reader.feed(data):
                self._handle(packet)
        except wire.ProtocolError as exc:
            self._fail(MqttError(f"the broker sent something this client cannot read: {exc}"))

    def _handle(self, packet: wire.Packet) -> None:
        kind, flags, body, dropped = packet
        if kind == wire.PUBLISH and dropped:
            # Acknowledged and dropped: left unacknowledged, a persistent session would
            # bring it back after every reconnect, for ever.
            message = wire.parse_publish(flags, body)
            if message.qos:
                self.ack(message.packet_id)
            self._dropped.warning(
                "dropped a message of %d bytes on %s: over this client's %d",
                dropped,
                shown(message.topic),
                self._opts.max_packet,
            )
        elif kind == wire.PUBLISH:
            self._on_message(self, wire.parse_publish(flags, body))
        elif kind in (wire.PUBACK, wire.SUBACK):
            waiter = self._waiting.pop(wire.packet_id_of(body), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(body)
        elif kind == wire.CONNACK and len(body) == 2 and not self._connack.done():
            self._connack.set_result((body[1], bool(body[0] & 1)))
        elif kind != wire.PINGRESP:
            raise wire.ProtocolError(f"an unexpected packet of type {kind}")

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail every waiter, unless this client closed it."""
        if self._closing and exc is None:
            self._fail(None)
        else:
            self._fail(MqttError(f"the connection was lost{f': {exc}' if exc else ''}"))

    def pause_writing(self) -> None:
        """The transport's buffer is full: QoS 1 publishes wait."""
        self._writable.clear()

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        self._writable.set()

    # the client's side --------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Connected, not lost, not closing."""
        return not self.closed.done() and not self._closing

    def publish_nowait(self, topic: str, payload: bytes) -> bool:
        """Queue a QoS 0 message; ``False`` when closed or too much waits to be sent."""
        transport = self._transport
        if transport is None or not self.is_open:
            return False
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            return False
        self._write(wire.publish(topic.encode(), payload))
        return True

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish; at QoS 1 return once the broker acknowledged it."""
        if qos == 0:
            if not self.publish_nowait(topic, payload):
                raise self._error_now()
            return
        packet = topic.encode()
        async with self._slots:
            if not self._writable.is_set():
                await self._writable.wait()  # _fail sets it: _expect then raises
            packet_id, answer = self._expect()
            self._write(wire.publish(packet, payload, 1, packet_id))
            try:
                await answer
            finally:
                if self._waiting.get(packet_id) is answer:  # cancelled before the PUBACK
                    del self._waiting[packet_id]

    async def subscribe(self, filters: list[str], timeout: float, qos: int = 1) -> None:
        """Subscribe to ``filters``; ``MqttError`` if the broker refuses one or is silent."""
        async with self._slots:
            packet_id, answer = self._expect()
            self._write(wire.subscribe(packet_id, filters, qos))
            try:
                async with asyncio.timeout(timeout):
                    body = await answer
            except TimeoutError:
                self._waiting.pop(packet_id, None)
                raise MqttError(f"no SUBACK within {timeout:g}s") from None
        refused = [f for f, code in zip(filters, body[2:], strict=False) if code >= 0x80]
        if refused or len(body) - 2 != len(filters):
            raise MqttError(f"the broker refused the subscription to {', '.join(refused)}")

    async def wait_closed(self) -> None:
        """Return when the connection is closed; raise ``MqttError`` if it was lost."""
        await asyncio.shield(self.closed)

    def pause_reading(self) -> None:
        """Read nothing more until ``resume_reading`` (the owner's queue is full)."""
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again after ``pause_reading``."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def ack(self, packet_id: int) -> None:
        """Acknowledge a QoS 1 message received on this connection (no-op once it is lost)."""
        if self.is_open:
            self._write(wire.puback(packet_id))

    async def close(self, timeout: float = 2.0) -> None:
        """Send DISCONNECT (what was queued goes first) and close."""
        if self.closed.done():
            return
        if self._transport is not None and not self._closing:
            self._write(wire.DISCONNECT_PACKET)
            self._flush()
            self._closing = True
            self._transport.close()
        with contextlib.suppress(TimeoutError, MqttError):
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.closed)
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()
        self._fail(None)

    # internals ----------------------------------------------------------------------------

    def _expect(self) -> tuple[int, asyncio.Future[bytes]]:
        if not self.is_open:
            raise self._error_now()
        packet_id = self._last_id
        while True:  # at most max_inflight are taken: a free one is near
            packet_id = packet_id % 0xFFFF + 1
            if packet_id not in self._waiting:
                break
        self._last_id = packet_id
        answer: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting[packet_id] = answer
        return packet_id, answer

    def _error_now(self) -> MqttError:
        if self.closed.done() and not self.closed.cancelled():
            exc = self.closed.exception()
            if isinstance(exc, MqttError):
                return exc
        return MqttError("the connection is closed")

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send what this loop turn queued, in one write."""
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _tick(self) -> None:
        """Keepalive: a PINGREQ every half period; no answer within a period is a loss."""
        now = self._loop.time()
        keepalive = self._opts.keepalive
        if self._pong_due is not None and now > self._pong_due:
            self._fail(MqttError(f"the broker did not answer a ping within {keepalive}s"))
            return
        if self._pong_due is None:
            self._pong_due = now + keepalive
        self._write(wire.PINGREQ_PACKET)
        self._ticker = self._loop.call_later(keepalive / 2, self._tick)

    def _started(self) -> None:
        if self._opts.keepalive > 0:
            self._ticker = self._loop.call_later(self._opts.keepalive / 2, self._tick)

    def _fail(self, error: MqttError | None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._transport is not None and error is not None:
            self._transport.abort()
        lost = error or MqttError("the connection is closed")
        if not self._connack.done():
            self._connack.set_exception(lost)
            self._connack.add_done_callback(seen)
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_exception(lost)
                waiter.add_done_callback(seen)
        if not self.closed.done():
            if error is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(error)
        self._writable.set()


async def connect(
    host: str,
    port: int,
    opts: Options,
    on_message: OnMessage,
    *,
    tls: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> Connection:
    """Open a connection and wait for the broker's CONNACK; ``MqttError`` if that fails."""
    loop = asyncio.get_running_loop()
    connection: Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            _, connection = await loop.create_connection(
                lambda: Connection(loop, on_message, opts),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls is not None else None,
            )
            connection._write(  # noqa: SLF001 - the module's own protocol
                wire.connect(
                    opts.client_id,
                    clean=opts.clean,
                    keepalive=opts.keepalive,
                    username=opts.username,
                    password=opts.password,
                )
            )
            rc, present = await connection._connack  # noqa: SLF001
    except TimeoutError:
        if connection is not None:
            connection.abort()
        raise MqttError(f"no answer from {host}:{port} within {timeout:g}s") from None
    except OSError as exc:
        raise MqttError(str(exc) or type(exc).__name__) from exc
    except MqttError:
        connection = None
        raise
    if rc != 0:
        connection.abort()
        reason = wire.CONNACK_REASONS.get(rc, f"return code {rc}")
        raise MqttError(f"the broker refused the connection: {reason}", rc=rc)
    connection.session_present = present
    connection._started()  # noqa: SLF001
    return connection

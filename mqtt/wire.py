"""MQTT 3.1.1 packets as bytes: the ones FLOps clients send, and a reader for what they get.

No I/O here: ``mqtt.client`` owns the connection. Only what a client needs is encoded
(CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT); the reader splits any byte stream
into packets and refuses one over its size bound before buffering it.
"""

from __future__ import annotations

from typing import NamedTuple

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
MAX_REMAINING = 268_435_455  # the largest remaining length the protocol can express
SUBACK_FAILURE = 0x80
CONNACK_REASONS = {
    1: "the broker does not accept MQTT 3.1.1",
    2: "the broker rejected the client id",
    3: "the broker is unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class ProtocolError(Exception):
    """The peer sent bytes that are not a packet this client can accept."""


class Packet(NamedTuple):
    """One packet as read: its type, the header's flag bits and the rest of it.

    A PUBLISH over the reader's bound comes as its header alone (topic and packet id, no
    payload) with ``dropped``, its size: the rest was read and thrown away.
    """

    kind: int
    flags: int
    body: bytes
    dropped: int = 0


class Publish(NamedTuple):
    """A PUBLISH packet's content."""

    topic: str
    payload: bytes
    qos: int
    packet_id: int


def remaining_length(n: int) -> bytes:
    """The variable-length encoding of a packet's remaining length."""
    if n < 128:
        return bytes((n,))
    if n > MAX_REMAINING:
        raise ValueError(f"a packet of {n} bytes is over MQTT's limit")
    out = bytearray()
    while n:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
    return bytes(out)


def _string(value: str) -> bytes:
    data = value.encode()
    if len(data) > 0xFFFF:
        raise ValueError(f"a string of {len(data)} bytes is over MQTT's 65,535")
    return len(data).to_bytes(2, "big") + data


def connect(
    client_id: str,
    *,
    clean: bool,
    keepalive: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT for MQTT 3.1.1."""
    flags = 0x02 if clean else 0
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _string(password)
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + keepalive.to_bytes(2, "big") + payload
    return b"\x10" + remaining_length(len(body)) + body


def publish(topic: bytes, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    """PUBLISH of ``payload`` on ``topic`` (UTF-8); a packet id with QoS 1."""
    if len(topic) > 0xFFFF:
        raise ValueError(f"a topic of {len(topic)} bytes is over MQTT's 65,535")
    head = len(topic).to_bytes(2, "big") + topic
    if qos:
        head += packet_id.to_bytes(2, "big")
    return bytes((0x30 | qos << 1,)) + remaining_length(len(head) + len(payload)) + head + payload


def puback(packet_id: int) -> bytes:
    """PUBACK of a QoS 1 message."""
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


def subscribe(packet_id: int, filters: list[str], qos: int = 1) -> bytes:
    """SUBSCRIBE to every filter at ``qos``."""
    body = packet_id.to_bytes(2, "big") + b"".join(_string(f) + bytes((qos,)) for f in filters)
    return b"\x82" + remaining_length(len(body)) + body


def parse_publish(flags: int, body: bytes) -> Publish:
    """A PUBLISH body: topic, payload, QoS and packet id (0 at QoS 0)."""
    qos = (flags >> 1) & 0x03
    if qos > 1:
        raise ProtocolError(f"a QoS {qos} message; this client subscribes at QoS 1 at most")
    if len(body) < 2:
        raise ProtocolError("a PUBLISH without a topic")
    end = 2 + int.from_bytes(body[:2], "big")
    try:
        topic = body[2:end].decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"a topic that is not UTF-8 ({exc})") from None
    packet_id = 0
    if qos:
        packet_id = int.from_bytes(body[end : end + 2], "big")
        end += 2
    if end > len(body):
        raise ProtocolError("a PUBLISH shorter than its header")
    return Publish(topic, body[end:], qos, packet_id)


def packet_id_of(body: bytes) -> int:
    """The packet id that starts a PUBACK's or SUBACK's body."""
    if len(body) < 2:
        raise ProtocolError("an acknowledgement without a packet id")
    return int.from_bytes(body[:2], "big")


class Reader:
    """Splits a byte stream into packets, keeping an incomplete one for the next bytes.

    A PUBLISH over ``max_packet`` is not buffered: its header is kept (so that it can be
    acknowledged) and the rest skipped as it arrives. Any other packet that large is a
    protocol error.
    """

    __slots__ = ("_buffer", "_max", "_need", "_skip")

    def __init__(self, max_packet: int) -> None:
        self._buffer = bytearray()
        self._need = 0  # bytes the buffered start of a packet needs before it can be read
        self._skip = 0  # bytes of an oversized message still to throw away
        self._max = max_packet

    def feed(self, data: bytes) -> list[Packet]:
        """The packets that ``data`` completes, in order."""
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:  # a large packet arriving in pieces
                return []
            buf = bytes(self._buffer)
            self._buffer.clear()
        else:
            buf = data
        self._need = 0
        end = len(buf)
        out: list[Packet] = []
        pos = 0
        while end - pos >= 2:
            found = _remaining_length(buf, pos + 1, end)
            if found is None:
                break
            first, (length, start) = buf[pos], found
            stop = start + length
            if length > self._max:
                head = self._oversized(first, length, buf, start, end)
                if head is None:  # its header is not all here yet
                    break
                out.append(Packet(PUBLISH, first & 0x0F, head, length))
                pos = min(end, stop)
                self._skip = stop - pos
                continue
            if stop > end:
                self._need = stop - pos
                break
            out.append(Packet(first >> 4, first & 0x0F, buf[start:stop]))
            pos = stop
        if pos < end:
            self._buffer += buf[pos:]
        return out

    def _oversized(self, first: int, length: int, buf: bytes, start: int, end: int) -> bytes | None:
        """The header of a PUBLISH over the bound, once all of it is here; else ``None``."""
        if first >> 4 != PUBLISH:
            raise ProtocolError(f"a packet of {length} bytes, over this client's {self._max}")
        if end - start < 2:
            return None
        size = _head_length(first, buf, start)
        if end - start < size:
            return None
        return buf[start : start + size]


def _remaining_length(buf: bytes, at: int, end: int) -> tuple[int, int] | None:
    """The remaining length encoded at ``at``, and where the body starts.

    ``None`` if its bytes are not all here yet.
    """
    length = 0
    shift = 0
    while at < end:
        byte = buf[at]
        at += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, at
        shift += 7
        if shift > 21:
            raise ProtocolError("a remaining length of more than four bytes")
    return None


def _head_length(first: int, buf: bytes, start: int) -> int:
    """The length of a PUBLISH's variable header (topic, packet id) starting at ``start``."""
    return 2 + int.from_bytes(buf[start : start + 2], "big") + (2 if first & 0x06 else 0)

"""What a hostile tenant does to a real broker, as functions the security and deploy tests share.

Each takes the broker's listeners as ``Door``s: where a user or a service logs in.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from dataclasses import dataclass

import aiomqtt


@dataclass(frozen=True)
class Door:
    """A listener and the credentials to pass it: a user's password, or a client cert."""

    port: int
    tls: ssl.SSLContext
    user: str | None = None
    password: str | None = None

    def client(self, identifier: str = "", *, clean: bool = True) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            username=self.user,
            password=self.password,
            tls_context=self.tls,
            identifier=identifier or None,
            clean_session=clean,
            timeout=10,
        )


def _text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def connack(door: Door, client_id: str, *, clean: bool) -> tuple[bool, int]:
    """Send an MQTT 3.1.1 CONNECT as ``client_id``; the CONNACK's (session present, code).

    With ``clean=False`` a session present means the broker handed us an existing session
    of that id, and dropped whoever held it.
    """
    flags = 0x02 if clean else 0
    payload = _text(client_id)
    if door.user is not None:
        flags |= 0x80
        payload += _text(door.user)
    if door.password is not None:
        flags |= 0x40
        payload += _text(door.password)
    body = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + payload
    length, size = b"", len(body)
    while True:
        byte, size = size % 128, size // 128
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            break
    with socket.create_connection(("127.0.0.1", door.port), timeout=5) as raw:
        sock = door.tls.wrap_socket(raw, server_hostname="127.0.0.1")
        sock.sendall(b"\x10" + length + body)
        reply = sock.recv(4)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    assert reply[:2] == b"\x20\x02", reply
    return bool(reply[2] & 1), reply[3]


async def offline_session(
    subscriber: Door, publisher: Door, topic: str, payloads: list[bytes], me: str
) -> list[bytes]:
    """What a persistent session ``me`` gets of ``payloads``, published (QoS 1) to ``topic``
    while it was away: the broker's queue for it, in order.
    """
    async with subscriber.client(me, clean=True):
        pass  # start from an empty session
    async with subscriber.client(me, clean=False) as client:
        await client.subscribe(topic, qos=1)
    async with publisher.client() as sender:
        for payload in payloads:
            await sender.publish(topic, payload, qos=1)
    received: list[bytes] = []
    async with subscriber.client(me, clean=False) as client:
        messages = aiter(client.messages)
        while len(received) < len(payloads):
            try:
                async with asyncio.timeout(2):
                    message = await anext(messages)
            except TimeoutError:
                break  # nothing more is queued
            assert isinstance(message.payload, bytes)
            received.append(message.payload)
    async with subscriber.client(me, clean=True):
        pass  # leave no session behind
    return received


async def offline_backlog(user: Door, service: Door, topic: str, count: int, size: int) -> int:
    """Bytes that reach a user's offline persistent session after a service published
    ``count`` messages of ``size`` bytes to ``topic`` while it was away.
    """
    payloads = [b"x" * size] * count
    got = await offline_session(user, service, topic, payloads, f"offline-{user.user}")
    return sum(len(p) for p in got)


async def retained_after(user: Door, service: Door, topic: str) -> list[bytes]:
    """A user publishes a retained message on ``topic`` (his own); what a later subscriber
    (a service) is served from the broker's store. The user is disconnected if the broker
    refuses retained messages, which ``aiomqtt`` reports as an error of the publish or of
    the disconnect.
    """
    try:
        async with user.client() as client:
            await client.publish(topic, b"parked for ever", qos=1, retain=True)
    except aiomqtt.MqttError:
        pass  # refused: the broker closed the connection
    served: list[bytes] = []
    async with service.client() as reader:
        await reader.subscribe(topic, qos=1)
        messages = aiter(reader.messages)
        try:
            async with asyncio.timeout(1):
                message = await anext(messages)
                assert isinstance(message.payload, bytes)
                served.append(message.payload)
        except TimeoutError:
            pass
    return served

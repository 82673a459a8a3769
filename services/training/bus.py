"""The MQTT side of a training actor: one aiomqtt client, chunked frames, JSON presence.

This is the one module of training that touches the MQTT client library (and
``broker.link``'s address types, which the re-housing moves to ``mqtt/link.py``). Each
actor owns one connection with a last will (its ``leave`` presence), so the broker tells
the others at once when the actor's process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import numpy as np
from pydantic import BaseModel

from core.errors import BrokerError
from mqtt.link import BrokerAddress, Credentials, explain
from services.training import wire
from services.training.errors import WireError
from services.training.settings import TrainingSettings

log = logging.getLogger(__name__)
WINDOW = 32  # chunks of one frame in flight at once


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    """Where the broker listens and who the actor is there."""

    address: BrokerAddress
    credentials: Credentials | None = None


class Bus:
    """Publish and receive training messages over one connected client."""

    def __init__(
        self, client: aiomqtt.Client, target: BrokerTarget, settings: TrainingSettings
    ) -> None:
        self._client = client
        self._target = target
        self._settings = settings
        self._chunks = wire.Reassembler(settings.max_model_bytes, settings.chunk_bytes)

    async def subscribe(self, *topics: str) -> None:
        """Subscribe to ``topics`` with QoS 1."""
        try:
            for topic in topics:
                await self._client.subscribe(topic, qos=1)
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from exc

    async def send_json(self, topic: str, message: BaseModel) -> None:
        """Publish a small JSON message with QoS 1."""
        try:
            await self._client.publish(topic, message.model_dump_json().encode(), qos=1)
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from exc

    async def send_frame(
        self, topic: str, header: BaseModel, arrays: Sequence[np.ndarray[Any, Any]] = ()
    ) -> None:
        """Publish a frame as chunks with QoS 1, at most ``WINDOW`` unacknowledged."""
        payload = wire.encode_frame(header, arrays, self._settings.max_model_bytes)
        pending: list[bytes] = []
        try:
            for chunk in wire.chunks(payload, self._settings.chunk_bytes):
                pending.append(chunk)
                if len(pending) == WINDOW:
                    await self._publish_all(topic, pending)
                    pending = []
            await self._publish_all(topic, pending)
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from exc

    async def _publish_all(self, topic: str, chunks: list[bytes]) -> None:
        await asyncio.gather(*(self._client.publish(topic, c, qos=1) for c in chunks))

    async def receive(self) -> AsyncIterator[tuple[str, bytes]]:
        """Whole payloads as they arrive: JSON as is, frames once all their chunks came."""
        try:
            async for message in self._client.messages:
                payload = message.payload
                if not isinstance(payload, bytes):
                    continue
                topic = str(message.topic)
                if payload[:1] == b"{":
                    yield topic, payload
                    continue
                try:
                    whole = self._chunks.add(topic, payload)
                except WireError as exc:
                    log.warning("dropped a message on %s: %s", topic, exc)
                    continue
                if whole is not None:
                    yield topic, whole
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: aiomqtt.MqttError) -> BrokerError:
        return BrokerError(
            f"lost the broker: {explain(exc, self._target.address, self._target.credentials)}"
        )


@contextlib.asynccontextmanager
async def connect(
    target: BrokerTarget,
    identifier: str,
    settings: TrainingSettings,
    will: tuple[str, BaseModel] | None = None,
) -> AsyncIterator[Bus]:
    """A connected ``Bus``; its will is published by the broker if the connection dies."""
    creds = target.credentials or Credentials()
    client = aiomqtt.Client(
        target.address.host,
        target.address.port,
        username=creds.username,
        password=creds.password,
        tls_context=creds.tls,
        identifier=identifier,
        clean_session=True,
        protocol=aiomqtt.ProtocolVersion.V311,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        will=None if will is None else aiomqtt.Will(will[0], will[1].model_dump_json(), qos=1),
        keepalive=max(5, int(settings.learner_timeout)),
        timeout=10.0,
        max_inflight_messages=1000,
    )
    client.pending_calls_threshold = 10_000  # a large model is many chunks in flight
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        raise BrokerError(explain(exc, target.address, target.credentials)) from exc
    try:
        yield Bus(client, target, settings)
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

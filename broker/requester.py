"""Short-lived client side: ask and wait for the answer, or follow a topic.

Used by the CLI. A clean session with a random client id; the reply topic is subscribed
before the request is published, so no answer can be missed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

import aiomqtt
from pydantic import BaseModel

from broker import codec, topics
from broker.link import BrokerAddress, make_client
from broker.messages import ErrorBody, Reply, Request
from core.errors import BrokerError, RemoteError, RequestTimeoutError

M = TypeVar("M", bound=BaseModel)


class Session:
    """One client connection of a CLI invocation, with its reply inbox."""

    def __init__(
        self, client: aiomqtt.Client, address: BrokerAddress, user: str, client_id: str
    ) -> None:
        self.client = client
        self.address = address
        self.user = user
        self.client_id = client_id
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._streams: dict[str, asyncio.Queue[bytes]] = {}

    async def subscribe(self, topic: topics.Topic) -> asyncio.Queue[bytes]:
        """Subscribe to ``topic``; its payloads arrive on the returned queue."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._streams[str(topic)] = queue
        await self.client.subscribe(str(topic), qos=1)
        return queue

    async def request(
        self, topic: topics.Topic, message: Request, result: type[M], timeout: float
    ) -> M:
        """Publish ``message`` on ``topic``, wait for the matching reply, return its result."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[message.request_id] = future
        try:
            await self.client.publish(str(topic), codec.encode(message), qos=1)
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestTimeoutError(
                f"no answer on {topic} within {timeout:g}s from the broker at {self.address}"
            ) from None
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"lost the broker at {self.address}: {exc}") from exc
        finally:
            self._waiting.pop(message.request_id, None)
        if not reply.ok or reply.result is None:
            err = reply.error or ErrorBody(code="unknown", message="request failed")
            raise RemoteError(err.code, err.message, err.details)
        return result.model_validate(reply.result)

    async def pump(self) -> None:
        """Route incoming messages to waiting requests and subscribed queues until cancelled."""
        try:
            async for message in self.client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                queue = self._streams.get(str(message.topic))
                if queue is not None:
                    queue.put_nowait(payload)
                    continue
                try:
                    reply = codec.decode(Reply, payload)
                except codec.MessageError:
                    continue
                future = self._waiting.get(reply.request_id)
                if future is not None and not future.done():
                    future.set_result(reply)
        except aiomqtt.MqttError as exc:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(BrokerError(f"lost the broker at {self.address}: {exc}"))


@asynccontextmanager
async def session(address: BrokerAddress, user: str, timeout: float) -> AsyncIterator[Session]:
    """Connect, subscribe to this client's reply topic, and pump messages while open."""
    client_id = "cli-" + uuid.uuid4().hex[:16]
    client = make_client(address, client_id, persistent=False, timeout=timeout)
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        raise BrokerError(f"cannot reach the MQTT broker at {address}: {exc}") from exc
    try:
        sess = Session(client, address, user, client_id)
        await client.subscribe(str(topics.reply(user, client_id)), qos=1)
        pump = asyncio.create_task(sess.pump())
        try:
            yield sess
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
    finally:
        with suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

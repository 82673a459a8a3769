"""Short-lived client side: ask and wait for the answer, or follow a topic.

Used by the CLI. A clean session with a random client id; the reply topic is subscribed
before anything is published, so no answer can be missed. A request without an answer is
published again with the same request id (the manager answers a repeat with the original
answer and does nothing twice), and a lost connection is re-established, subscriptions
included, until the request's deadline. Resends back off: the n-th waits
``FIRST_RETRY * 2**n`` seconds (at most ``MAX_RETRY``) times a random factor in [1, 2), so
that the clients of an overloaded manager do not ask again all at once; a ``busy`` answer
(the manager has too many starts in hand) is honoured the same way, from ``BUSY_PAUSE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel

from core.errors import BrokerError, RemoteError, RequestTimeoutError
from mqtt.client import Connection, MqttError, Options, connect
from mqtt.link import BrokerAddress, Credentials, explain
from mqtt.wire import Publish
from protocol import codec, topics
from protocol.messages import ErrorBody, Reply, Request

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)
FIRST_RETRY = 1.0  # seconds before the first resend of an unanswered request, at least
MAX_RETRY = 10.0  # seconds between resends, at most (before the jitter)
BUSY_PAUSE = 0.25  # seconds after the first busy answer, at least
BUSY = "busy"  # the error code of a manager with too many requests in hand
SUBSCRIBE_TIMEOUT = 5.0  # seconds for a SUBACK


class Session:
    """One client connection of a CLI invocation, with its reply inbox."""

    def __init__(
        self,
        address: BrokerAddress,
        user: str,
        timeout: float,
        credentials: Credentials | None = None,
    ) -> None:
        self.address = address
        self.user = user
        self.timeout = timeout
        # 128 random bits: no other user can guess it to take this connection over.
        self.client_id = "cli-" + uuid.uuid4().hex
        self.on_retry: Callable[[int], None] | None = None
        self._credentials = credentials
        self._client: Connection | None = None  # set while connected
        self._lost = asyncio.Event()
        self._reconnecting = asyncio.Lock()
        self._topics = [str(topics.reply(user, self.client_id))]
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        # A stream's queue gets ``None`` when the connection is lost: the reader catches up.
        self._streams: dict[str, asyncio.Queue[bytes | None]] = {}
        # A SUBSCRIBE whose connection silently stalls (a broker restarting just as we
        # connect) must not wait the whole request timeout: bounded, the reconnect loop
        # tries again (seen once in a test restarting the broker mid-burst).
        self._subscribe_timeout = min(timeout, SUBSCRIBE_TIMEOUT)

    async def connect(self) -> None:
        """Connect (again) and subscribe to every topic this session follows."""
        await self.close()
        creds = self._credentials or Credentials()
        opts = Options(self.client_id, username=creds.username, password=creds.password)
        try:
            client = await connect(
                self.address.host,
                self.address.port,
                opts,
                self._received,
                tls=creds.tls,
                timeout=self.timeout,
            )
            self._client = client
            await client.subscribe(self._topics, self._subscribe_timeout)
        except MqttError as exc:
            await self.close()
            raise BrokerError(explain(exc, self.address, self._credentials)) from exc
        self._lost.clear()
        client.closed.add_done_callback(lambda _: self._gone(client))

    async def close(self) -> None:
        """Disconnect."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def subscribe(self, topic: topics.Topic) -> asyncio.Queue[bytes | None]:
        """Subscribe to ``topic`` (again after reconnects); payloads arrive on the queue."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._streams[str(topic)] = queue
        self._topics.append(str(topic))
        if self._client is not None:
            try:
                await self._client.subscribe([str(topic)], self._subscribe_timeout)
            except MqttError:
                self._mark_lost()  # next_message connects and subscribes again
        return queue

    async def next_message(self, queue: asyncio.Queue[bytes | None]) -> bytes | None:
        """The next payload on a subscribed ``queue``; ``None`` after a lost connection.

        On ``None`` the session is connected and subscribed again (within its timeout),
        and whatever was published meanwhile was missed: the caller catches up.
        """
        payload = await queue.get()
        if payload is not None:
            return payload
        loop = asyncio.get_running_loop()
        await self._reconnect(loop.time() + self.timeout)
        return None

    async def request(
        self, topic: topics.Topic, message: Request, result: type[M], timeout: float
    ) -> M:
        """Publish ``message`` on ``topic`` until the matching reply arrives; return its result."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        future: asyncio.Future[Reply] = loop.create_future()
        self._waiting[message.request_id] = future
        try:
            reply = await self._until_answered(topic, message, future, deadline)
        finally:
            self._waiting.pop(message.request_id, None)
        if not reply.ok or reply.result is None:
            err = reply.error or ErrorBody(code="internal", message="request failed")
            raise RemoteError(err.code, err.message, err.details)
        return result.model_validate(reply.result)

    async def _until_answered(
        self, topic: topics.Topic, message: Request, future: asyncio.Future[Reply], deadline: float
    ) -> Reply:
        loop = asyncio.get_running_loop()
        attempt = busy = 0  # resends for want of an answer; busy answers so far
        resend = False  # the next publish repeats one that got no answer
        while True:
            if self._lost.is_set() or self._client is None:
                await self._reconnect(deadline)
            if resend and self.on_retry is not None:
                self.on_retry(attempt)
            # The answer is the confirmation: do not wait for the PUBACK of a dead connection.
            publish = asyncio.ensure_future(self._publish(topic, message))
            remaining = deadline - loop.time()
            lost = asyncio.ensure_future(self._lost.wait())
            waiters: set[asyncio.Future[Any]] = {future, lost}
            try:
                await asyncio.wait(
                    waiters,
                    timeout=min(backoff(FIRST_RETRY, attempt), remaining),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for task in (lost, publish):
                    task.cancel()
                await asyncio.gather(lost, publish, return_exceptions=True)
            resend = not future.done()
            if future.done():
                reply = future.result()
                if reply.ok or reply.error is None or reply.error.code != BUSY:
                    return reply
                # Busy: the same request again after a pause that grows, with jitter.
                future = loop.create_future()
                self._waiting[message.request_id] = future
                await asyncio.sleep(max(0.0, min(backoff(BUSY_PAUSE, busy), remaining)))
                busy += 1
            elif not self._lost.is_set():
                attempt += 1
            if loop.time() >= deadline:
                busy_note = f" (the manager answered busy {busy} times)" if busy else ""
                raise RequestTimeoutError(
                    f"no answer on {topic} within {self.timeout:g}s from the broker at "
                    f"{self.address}{busy_note}"
                )

    async def _publish(self, topic: topics.Topic, message: Request) -> None:
        client = self._client
        if client is not None and not self._lost.is_set():
            with contextlib.suppress(MqttError):
                await client.publish(str(topic), codec.encode(message), qos=1)

    async def _reconnect(self, deadline: float) -> None:
        # Requests in flight on one session all see the loss: one of them reconnects, the
        # others find it done (each connect closes the connection there was).
        async with self._reconnecting:
            client = self._client
            if client is not None and client.is_open and not self._lost.is_set():
                return
            await self._connect_until(deadline)

    async def _connect_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        pause = 0.1
        while True:
            try:
                await self.connect()
            except BrokerError:
                if loop.time() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            else:
                return

    def _received(self, client: Connection, message: Publish) -> None:
        """Route an incoming message to its waiting request or subscribed queue."""
        if message.qos:
            client.ack(message.packet_id)
        queue = self._streams.get(message.topic)
        if queue is not None:
            queue.put_nowait(message.payload)
        else:
            self._deliver(message.payload)

    def _gone(self, client: Connection) -> None:
        """The connection ended: unless it was closed on purpose, the session lost it."""
        if client is self._client:
            exc = None if client.closed.cancelled() else client.closed.exception()
            log.debug("lost the broker at %s: %s", self.address, exc)
            self._mark_lost()

    def _mark_lost(self) -> None:
        """Every request and stream learns that the connection is gone."""
        self._lost.set()
        for queue in self._streams.values():
            queue.put_nowait(None)

    def _deliver(self, payload: bytes) -> None:
        try:
            reply = codec.decode(Reply, payload)
        except codec.MessageError:
            return
        future = self._waiting.get(reply.request_id)
        if future is not None and not future.done():
            future.set_result(reply)


def backoff(first: float, attempt: int) -> float:
    """Seconds before resend number ``attempt`` (from 0): doubling, capped, jittered.

    The jitter spreads the resends of many clients that timed out together over a window
    as wide as the pause itself (``random`` suffices: nothing here is a secret).
    """
    return min(MAX_RETRY, first * 2.0**attempt) * random.uniform(1.0, 2.0)  # noqa: S311


@asynccontextmanager
async def session(
    address: BrokerAddress, user: str, timeout: float, credentials: Credentials | None = None
) -> AsyncIterator[Session]:
    """A connected ``Session``, closed on exit."""
    sess = Session(address, user, timeout, credentials)
    await sess.connect()
    try:
        yield sess
    finally:
        await sess.close()

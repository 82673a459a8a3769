"""The CLI's request code on a real mosquitto: resends with backoff and jitter."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from mqtt.link import make_client
from mqtt.requester import FIRST_RETRY, MAX_RETRY, backoff, session
from protocol import codec, topics
from protocol.messages import ListProjects, ProjectList, Reply, new_request_id
from tests.conftest import BrokerProcess

pytestmark = pytest.mark.timeout(30)
USER = "Admin"


def test_the_pause_before_a_resend_doubles_up_to_a_cap_and_is_jittered() -> None:
    for attempt in range(8):
        floor = min(MAX_RETRY, FIRST_RETRY * 2**attempt)
        pauses = {backoff(FIRST_RETRY, attempt) for _ in range(50)}
        assert all(floor <= p < 2 * floor for p in pauses), (attempt, pauses)
        assert len(pauses) > 1  # spread, not one instant for every client


@asynccontextmanager
async def answering_from_copy(broker: BrokerProcess, copy: int) -> AsyncIterator[list[str]]:
    """A responder that ignores each request until its ``copy``-th arrival (1-based)."""
    seen: list[str] = []
    client = make_client(broker.address, "responder-" + new_request_id()[:8], persistent=False)
    async with client:
        await client.subscribe(str(topics.request(USER, topics.Op.LIST_PROJECTS)), qos=1)

        async def serve() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                request = codec.decode(ListProjects, message.payload)
                seen.append(request.request_id)
                if seen.count(request.request_id) >= copy:
                    reply = Reply(
                        request_id=request.request_id,
                        ok=True,
                        result=ProjectList(projects=[], total=0).model_dump(mode="json"),
                    )
                    topic = str(topics.reply(USER, request.reply_to))
                    await client.publish(topic, codec.encode(reply), qos=1)

        task = asyncio.create_task(serve())
        try:
            yield seen
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_an_unanswered_request_is_sent_again_with_the_same_request_id(
    mosquitto: BrokerProcess,
) -> None:
    retries: list[int] = []
    async with (
        answering_from_copy(mosquitto, 2) as seen,
        session(mosquitto.address, USER, 20) as sess,
    ):
        sess.on_retry = retries.append
        request = ListProjects(request_id=new_request_id(), reply_to=sess.client_id)
        topic = topics.request(USER, topics.Op.LIST_PROJECTS)
        answer = await sess.request(topic, request, ProjectList, 20)
    assert answer.total == 0
    assert seen == [request.request_id, request.request_id]
    assert retries == [1]

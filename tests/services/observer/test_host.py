"""The observer host's writer, with a stub link (the real broker path: tests/integration)."""

import asyncio
import functools
from pathlib import Path
from typing import Any, cast

import pytest

from core.errors import StoreError
from mqtt.link import Inbound, Link
from protocol import codec, topics
from protocol.events import BestRound, Event, RoundMetrics
from protocol.messages import LogPage, LogQuery
from protocol.states import ProjectState
from services.observer.host import Hosted, ObserverHost
from services.observer.store import LogStore

P = "c" * 24


class StubLink:
    """Records routes and live publishes."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.live: list[str] = []

    def route(self, topic_filter: str, handler: Any, **_: object) -> None:
        self.routes[topic_filter] = handler

    def publish_nowait(self, topic: object, payload: bytes) -> bool:
        self.live.append(str(topic))
        return True


async def test_a_burst_of_events_is_written_in_few_transactions(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    batches: list[int] = []
    append = store.append

    async def counting(events: Any, observers: Any = ()) -> Any:
        batches.append(len(events))
        return await append(events, observers)

    store.append = counting  # type: ignore[method-assign]
    link = StubLink()
    host = ObserverHost(cast(Link, link), store, lambda sid: "0" * 32)
    await store.register(P, "u", "s" * 24, "observ1")
    await host.load()
    count = 300
    acked: list[int] = []
    all_acked = asyncio.Event()

    def ack(n: int) -> None:
        acked.append(n)
        if len(acked) == count:
            all_acked.set()

    writer = asyncio.create_task(host.write_forever())
    topic = str(topics.events("u", P))
    for n in range(count):
        payload = codec.encode(Event(project_id=P, source="svc", text=f"e{n}"))
        await host.on_event(Inbound(topic, payload, 1, functools.partial(ack, n)))
        # The MQTT client hands over one message per loop turn, and each takes two turns.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    async with asyncio.timeout(30):
        await all_acked.wait()
    writer.cancel()
    assert sorted(acked) == list(range(count))
    assert len(link.live) == count
    assert sum(batches) == count
    assert len(batches) <= count // 10, batches
    assert [e.seq for e in await store.read(P, 1, 1000)] == list(range(1, count + 1))
    await store.close()


async def test_an_event_of_this_process_is_stored_before_record_returns(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    link = StubLink()
    host = ObserverHost(cast(Link, link), store, lambda sid: "0" * 32)
    await store.register(P, "u", "s" * 24, "observ1")
    await host.load()
    assert host.hosts(P)
    assert not host.hosts("d" * 24)
    writer = asyncio.create_task(host.write_forever())
    await host.record("u", Event(project_id=P, source="svc", text="local"))
    assert [e.text for e in await store.read(P, 1, 10)] == ["local"]
    assert link.live == [str(topics.log("u", P))]

    async def broken(events: Any, observers: Any = ()) -> Any:
        raise StoreError("disk full")

    store.append = broken  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="disk full"):
        await host.record("u", Event(project_id=P, source="svc", text="lost"))
    writer.cancel()
    await store.close()


async def test_events_of_this_process_queued_together_are_stored_in_one_transaction(
    tmp_path: Path,
) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    batches: list[list[str]] = []
    append = store.append

    async def counting(events: Any, observers: Any = ()) -> Any:
        batches.append([e.text for e in events])
        return await append(events, observers)

    store.append = counting  # type: ignore[method-assign]
    link = StubLink()
    host = ObserverHost(cast(Link, link), store, lambda sid: "0" * 32)
    await store.register(P, "u", "s" * 24, "observ1")
    await host.load()
    writer = asyncio.create_task(host.write_forever())
    texts = ["deployed", "state", "third"]
    stored = [host.queue("u", Event(project_id=P, source="m", text=t)) for t in texts]
    async with asyncio.timeout(5):
        await asyncio.gather(*stored)
    assert batches == [texts]  # one transaction, at once (no turns waited for more)
    assert [e.text for e in await store.read(P, 1, 10)] == texts
    assert len(link.live) == 3
    writer.cancel()
    await store.close()


async def test_a_new_observer_is_registered_with_its_first_entry_or_not_at_all(
    tmp_path: Path,
) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    host = ObserverHost(cast(Link, StubLink()), store, lambda sid: "1" * 32)
    writer = asyncio.create_task(host.write_forever())
    append = store.append

    async def broken(events: Any, observers: Any = ()) -> Any:
        raise StoreError("disk full")

    store.append = broken  # type: ignore[method-assign]
    hosted = Hosted(P, "u", "s" * 24, "observ1")
    with pytest.raises(StoreError):
        await host.deploy(hosted)
    assert not host.hosts(P)
    assert await store.observers() == []
    store.append = append  # type: ignore[method-assign]
    await host.deploy(hosted)
    assert host.hosts(P)
    assert await store.observers() == [(P, "u", "s" * 24, "observ1")]
    assert [e.text for e in await store.read(P, 1, 10)] == ["Project Observer started"]
    writer.cancel()
    await store.close()


async def test_a_page_states_starting_until_an_entry_reports_a_state(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    host = ObserverHost(cast(Link, StubLink()), store, lambda sid: "2" * 32)
    writer = asyncio.create_task(host.write_forever())
    await host.deploy(Hosted(P, "u", "s" * 24, "observ1"))
    query = LogQuery(request_id="r" * 16, reply_to="c")
    page = LogPage.model_validate(await host.page(P, query))
    assert (page.state, page.more, [e.seq for e in page.entries]) == ("STARTING", False, [1])
    await host.record("u", Event(project_id=P, source="b", text="x", state=ProjectState.BUILDING))
    page = LogPage.model_validate(await host.page(P, query))
    assert page.state is ProjectState.BUILDING
    writer.cancel()
    await store.close()


async def test_the_last_page_carries_the_last_round_with_the_best_after_3000_rounds(
    tmp_path: Path,
) -> None:
    """``flops status``: one page of the last entry, its summary kept as the rounds came."""
    store = await LogStore.open(tmp_path / "o.db")
    host = ObserverHost(cast(Link, StubLink()), store, lambda sid: "2" * 32)
    best = BestRound(round=7, loss=0.4, accuracy=0.9)
    rounds = [
        Event(project_id=P, source="aggr", text=f"Round {n}", data=metrics(n, best))
        for n in range(1, 3001)
    ]
    try:
        for start in range(0, 3000, 500):
            await store.append(rounds[start : start + 500])
        await store.append([Event(project_id=P, source="aggr", text="done")])
        query = LogQuery(request_id="r" * 16, reply_to="c", last=1)
        page = LogPage.model_validate(await host.page(P, query))
        assert [e.text for e in page.entries] == ["done"]
        assert page.training == metrics(3000, best)
        await store.append([rounds[10]])  # a repeat after a restart is not stored again
        assert LogPage.model_validate(await host.page(P, query)).training == metrics(3000, best)
        await store.unregister(P, purge=True)
        assert (await store.last_round(P)) is None
    finally:
        await store.close()


def metrics(number: int, best: BestRound) -> RoundMetrics:
    return RoundMetrics(
        round=number, loss=0.5, accuracy=0.8, examples=10, learners=2, seconds=0.1, best=best
    )

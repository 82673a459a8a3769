"""The link against a real mosquitto: routing, manual acks, reconnect and resubscribe."""

import asyncio
from pathlib import Path

import pytest

from broker.server import Mosquitto
from mqtt import link as link_module
from mqtt.link import Inbound, Link, make_client
from protocol import codec, topics
from protocol.events import Event
from tests.conftest import BrokerProcess

pytestmark = pytest.mark.timeout(30)


async def publish(broker: BrokerProcess, topic: str, payload: bytes) -> None:
    async with make_client(broker.address, "pub-" + topic.replace("/", "-"), persistent=False) as c:
        await c.publish(topic, payload, qos=1)


async def test_routes_deliver_to_every_matching_handler(mosquitto: BrokerProcess) -> None:
    link = Link(mosquitto.address, "link-routes")
    got: list[tuple[str, bytes]] = []
    both = asyncio.Event()

    async def a(m: Inbound) -> None:
        got.append(("a", m.payload))

    async def b(m: Inbound) -> None:
        got.append(("b", m.payload))
        both.set()

    link.route("t1/+", a)
    link.route("t1/#", b, concurrent=True)
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    await link.wait_connected(5)
    await publish(mosquitto, "t1/x", b"hello")
    await asyncio.wait_for(both.wait(), 5)
    stop.set()
    await task
    assert sorted(got) == [("a", b"hello"), ("b", b"hello")]


async def test_a_message_not_acknowledged_is_delivered_again(mosquitto: BrokerProcess) -> None:
    """A handler that holds the ack and dies: the broker redelivers after reconnect."""
    seen: list[bytes] = []
    first = asyncio.Event()

    async def hold_forever(m: Inbound) -> None:
        m.hold()  # never released: like a crash before the durable write
        seen.append(m.payload)
        first.set()

    link = Link(mosquitto.address, "link-ack")
    link.route("t2/+", hold_forever)
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    await link.wait_connected(5)
    await publish(mosquitto, "t2/x", b"once")
    await asyncio.wait_for(first.wait(), 5)
    stop.set()
    await task

    again = asyncio.Event()

    async def ack(m: Inbound) -> None:
        seen.append(m.payload)
        again.set()

    link2 = Link(mosquitto.address, "link-ack")  # same client id: same persistent session
    link2.route("t2/+", ack)
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(link2.run(stop2))
    await asyncio.wait_for(again.wait(), 10)
    stop2.set()
    await task2
    assert seen == [b"once", b"once"]


async def test_reconnects_and_resubscribes_after_a_broker_restart(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "b")
    broker.start()
    got = asyncio.Queue[bytes]()

    async def handler(m: Inbound) -> None:
        got.put_nowait(m.payload)

    link = Link(broker.address, "link-reconnect")
    link.route("t3/+", handler)
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    try:
        await link.wait_connected(5)
        await publish(broker, "t3/a", b"before")
        assert await asyncio.wait_for(got.get(), 5) == b"before"
        broker.stop()
        broker.start()
        published_after = asyncio.create_task(link.publish("t3/self", b"after"))
        await asyncio.wait_for(published_after, 15)
        assert await asyncio.wait_for(got.get(), 5) == b"after"
    finally:
        stop.set()
        await task
        broker.stop()


async def test_embedded_mosquitto_starts_on_a_free_port_and_remembers_it(tmp_path: Path) -> None:
    first = await Mosquitto.start(tmp_path)
    port = first.address.port
    await first.stop()
    second = await Mosquitto.start(tmp_path)
    try:
        assert second.address.port == port
    finally:
        await second.stop()


async def test_an_oversized_payload_is_refused_before_it_reaches_the_broker(
    mosquitto: BrokerProcess,
) -> None:
    from core.errors import BrokerError  # noqa: PLC0415
    from protocol import codec  # noqa: PLC0415

    link = Link(mosquitto.address, "link-big")
    with pytest.raises(BrokerError, match="bytes is over"):
        await link.publish("t9/x", b"x" * (codec.MAX_PAYLOAD + 1))
    assert link.publish_nowait("t9/x", b"x" * (codec.MAX_PAYLOAD + 1)) is False


def test_an_inbound_message_is_parsed_and_decoded_once_for_all_handlers() -> None:
    event = Event(project_id="a" * 24, source="s", text="hi")
    inbound = Inbound(
        f"flops/v1/users/u/projects/{'a' * 24}/events", codec.encode(event), 1, lambda: None
    )
    first = inbound.decode(Event)
    assert first == event
    assert inbound.decode(Event) is first
    assert inbound.parsed_topic() is inbound.parsed_topic()
    assert inbound.parsed_topic().project_id == "a" * 24


def test_a_bad_inbound_payload_raises_the_same_error_for_every_handler() -> None:
    inbound = Inbound("not/ours", b"{nope", 1, lambda: None)
    for _ in range(2):
        with pytest.raises(codec.MessageError) as caught:
            inbound.decode(Event)
        assert caught.value.code == "bad_json"
        with pytest.raises(topics.TopicError):
            inbound.parsed_topic()


async def test_packets_queued_in_one_loop_turn_all_arrive_in_order(
    mosquitto: BrokerProcess,
) -> None:
    """A turn's packets leave in one write; none may be held back or lost."""
    link = Link(mosquitto.address, "link-cork")
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    await link.wait_connected(5)
    got: list[bytes] = []
    async with make_client(mosquitto.address, "cork-reader", persistent=False) as reader:
        await reader.subscribe("cork/#", qos=1)
        sent = [f"m{n}".encode() for n in range(300)]
        assert all([link.publish_nowait("cork/t", p) for p in sent])  # one turn, 300 packets
        await link.publish("cork/t", b"last")  # QoS 1, behind them on the same connection
        async with asyncio.timeout(10):
            async for message in reader.messages:
                got.append(bytes(message.payload))
                if got[-1] == b"last":
                    break
    stop.set()
    await task
    assert got == [*sent, b"last"]


async def test_a_slow_handler_pauses_reading_and_loses_nothing(
    mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the queue's bound the link stops reading (the broker keeps the rest) and resumes."""
    monkeypatch.setattr(link_module, "QUEUE_HIGH", 20)
    monkeypatch.setattr(link_module, "QUEUE_LOW", 5)
    link = Link(mosquitto.address, "link-slow")
    got: list[bytes] = []
    paused: list[bool] = []
    sent = [f"m{n}".encode() for n in range(300)]
    all_in = asyncio.Event()

    async def slow(m: Inbound) -> None:
        paused.append(link._paused is not None)  # noqa: SLF001
        await asyncio.sleep(0.001)
        got.append(m.payload)
        if len(got) == len(sent):
            all_in.set()

    link.route("slow/#", slow)
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    await link.wait_connected(5)
    async with make_client(mosquitto.address, "slow-pub", persistent=False) as pub:
        await asyncio.gather(*(pub.publish("slow/t", p, qos=1) for p in sent))
    await asyncio.wait_for(all_in.wait(), 10)
    stop.set()
    await task
    assert got == sent
    assert any(paused) and not paused[-1]

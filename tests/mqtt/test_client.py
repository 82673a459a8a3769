"""The stack's MQTT client against a real mosquitto, and against brokers that misbehave."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from mqtt import wire
from mqtt.client import Connection, MqttError, Options, connect
from tests.conftest import BrokerProcess

pytestmark = pytest.mark.timeout(30)


class Inbox:
    """What a connection received, with a way to wait for it."""

    def __init__(self, ack: bool = True) -> None:
        self.got: list[wire.Publish] = []
        self.ack = ack
        self.changed = asyncio.Event()

    def __call__(self, conn: Connection, message: wire.Publish) -> None:
        self.got.append(message)
        if self.ack and message.qos:
            conn.ack(message.packet_id)
        self.changed.set()

    async def wait_for(self, count: int) -> list[wire.Publish]:
        async with asyncio.timeout(10):
            while len(self.got) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.got


async def open_to(broker: BrokerProcess, name: str, inbox: Inbox, clean: bool = True) -> Connection:
    return await connect(
        broker.address.host, broker.address.port, Options(name, clean=clean), inbox
    )


async def test_messages_at_qos_0_and_1_arrive_in_order(mosquitto: BrokerProcess) -> None:
    inbox = Inbox()
    sub = await open_to(mosquitto, "c-sub", inbox)
    pub = await open_to(mosquitto, "c-pub", Inbox())
    await sub.subscribe(["c/#"], timeout=5)
    await pub.publish("c/a", b"one", qos=1)
    assert pub.publish_nowait("c/b", b"two")
    await pub.publish("c/c", b"three", qos=1)
    got = await inbox.wait_for(3)
    assert [(m.topic, m.payload) for m in got] == [
        ("c/a", b"one"),
        ("c/b", b"two"),
        ("c/c", b"three"),
    ]
    await pub.close()
    await sub.close()
    assert sub.closed.done() and sub.closed.exception() is None


async def test_an_unacknowledged_message_comes_again_to_a_persistent_session(
    mosquitto: BrokerProcess,
) -> None:
    silent = Inbox(ack=False)
    sub = await open_to(mosquitto, "c-persist", silent, clean=False)
    await sub.subscribe(["persist/#"], timeout=5)
    pub = await open_to(mosquitto, "c-persist-pub", Inbox())
    await pub.publish("persist/x", b"keep me", qos=1)
    await silent.wait_for(1)
    sub.abort()  # as a crash would: no PUBACK was sent
    again = Inbox()
    sub = await open_to(mosquitto, "c-persist", again, clean=False)
    assert sub.session_present
    got = await again.wait_for(1)
    assert got[0].payload == b"keep me"
    await sub.close()
    sub = await open_to(mosquitto, "c-persist", Inbox(), clean=True)  # forget the session
    await sub.close()
    await pub.close()


async def test_packet_ids_wrap_around_and_stay_unique(mosquitto: BrokerProcess) -> None:
    inbox = Inbox()
    sub = await open_to(mosquitto, "c-ids", inbox)
    await sub.subscribe(["ids/#"], timeout=5)
    pub = await connect(
        mosquitto.address.host,
        mosquitto.address.port,
        Options("c-ids-pub", max_inflight=8),
        Inbox(),
    )
    pub._last_id = 0xFFF0  # noqa: SLF001 - start near the end of the 16-bit space
    await asyncio.gather(*(pub.publish("ids/t", str(n).encode()) for n in range(100)))
    got = await inbox.wait_for(100)
    assert sorted(int(m.payload) for m in got) == list(range(100))
    await pub.close()
    await sub.close()


async def test_an_invalid_filter_loses_the_connection(mosquitto: BrokerProcess) -> None:
    conn = await open_to(mosquitto, "c-bad-sub", Inbox())
    with pytest.raises(MqttError, match="lost"):  # mosquitto drops a client that sends one
        await conn.subscribe(["a/#/b"], timeout=5)
    await conn.close()


async def test_nothing_listening_is_an_error_naming_the_cause() -> None:
    with pytest.raises(MqttError, match=r"refused|Connect call failed"):
        await connect("127.0.0.1", 1, Options("c-nowhere"), Inbox(), timeout=5)


@asynccontextmanager
async def fake_broker(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object],
) -> AsyncIterator[int]:
    """A TCP server on a free port that runs ``serve`` for each connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # the CONNECT
        await serve(reader, writer)  # type: ignore[misc]

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_a_silent_broker_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with fake_broker(silent) as port:
        with pytest.raises(MqttError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.3s"):
            await connect("127.0.0.1", port, Options("c-silent"), Inbox(), timeout=0.3)


async def test_a_refusing_broker_gives_its_reason_and_code() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x20\x02\x00\x05")
        await writer.drain()
        await reader.read()

    async with fake_broker(refuse) as port:
        with pytest.raises(MqttError, match="not authorized") as caught:
            await connect("127.0.0.1", port, Options("c-refused"), Inbox(), timeout=5)
    assert caught.value.rc == 5


async def test_a_refused_subscription_is_an_error() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x20\x02\x00\x00")
        await writer.drain()
        subscribe = await reader.read(1024)
        writer.write(b"\x90\x04" + subscribe[2:4] + b"\x01\x80")  # the second one refused
        await writer.drain()
        await reader.read()

    async with fake_broker(refuse) as port:
        conn = await connect("127.0.0.1", port, Options("c-acl"), Inbox(), timeout=5)
        with pytest.raises(MqttError, match="refused the subscription to b/#"):
            await conn.subscribe(["a/#", "b/#"], timeout=5)
        await conn.close()


async def test_a_message_over_the_bound_is_acknowledged_and_dropped_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acked = asyncio.get_running_loop().create_future()

    async def oversized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x20\x02\x00\x00")
        writer.write(wire.publish(b"big/t", bytes(5_000), 1, 41))
        writer.write(wire.publish(b"small/t", b"hello", 1, 42))
        await writer.drain()
        acks = b""
        while len(acks) < 8:
            acks += await reader.read(1024)
        acked.set_result(acks)
        await reader.read()

    inbox = Inbox()
    async with fake_broker(oversized) as port:
        conn = await connect("127.0.0.1", port, Options("c-big", max_packet=1_000), inbox)
        got = await inbox.wait_for(1)
        assert [(m.topic, m.payload) for m in got] == [("small/t", b"hello")]
        assert await asyncio.wait_for(acked, 5) == wire.puback(41) + wire.puback(42)
        assert conn.is_open
        await conn.close()
    assert "dropped a message of 5009 bytes on 'big/t'" in caplog.text


async def test_garbage_from_the_broker_fails_the_connection_and_its_waiters() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x20\x02\x00\x00")
        await writer.drain()
        await reader.read(1024)  # the PUBLISH
        writer.write(b"\x30\xff\xff\xff\xff\x01")  # a five-byte length
        await writer.drain()
        await reader.read()

    async with fake_broker(garbage) as port:
        conn = await connect("127.0.0.1", port, Options("c-garbage"), Inbox(), timeout=5)
        with pytest.raises(MqttError, match="cannot read: a remaining length"):
            await conn.publish("t", b"x", qos=1)
        with pytest.raises(MqttError):
            await conn.wait_closed()
        assert not conn.publish_nowait("t", b"y")


async def test_a_broker_that_stops_answering_pings_is_a_lost_connection() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x20\x02\x00\x00")
        await writer.drain()
        await asyncio.sleep(10)  # reads the PINGREQs, never answers

    async with fake_broker(mute) as port:
        conn = await connect("127.0.0.1", port, Options("c-mute", keepalive=1), Inbox())
        with pytest.raises(MqttError, match="did not answer a ping within 1s"):
            async with asyncio.timeout(5):
                await conn.wait_closed()


async def test_a_dead_broker_fails_waiting_publishes(mosquitto: BrokerProcess) -> None:
    conn = await open_to(mosquitto, "c-dead", Inbox())
    pending = [asyncio.ensure_future(conn.publish("dead/t", b"x" * 1000)) for _ in range(200)]
    mosquitto.stop()
    try:
        results = await asyncio.gather(*pending, return_exceptions=True)
        with pytest.raises(MqttError, match="lost"):
            await conn.wait_closed()
    finally:
        mosquitto.start()
    assert all(r is None or isinstance(r, MqttError) for r in results)

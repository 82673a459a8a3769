"""Bare-MQTT baselines: the same broker, no FLOps code in the path, two client libraries.

aiomqtt (``mqtt.link.make_client``, the stack's library until issue 15's round four) in
this process: an "echo responder" stands in for the manager, answering each request by
publishing the payload back on the asker's reply topic, at QoS 1, one task per answer (as
the manager's concurrent route does). paho at both ends, each end a process of its own
(``bench.paho``): the fastest bare exchange this broker carries, which every ratio is taken
against.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from mqtt.link import BrokerAddress
from mqtt.link import make_client as _make_client

BASE = "bench/v1/users/bench"


def make_client(address: BrokerAddress, identifier: str, *, persistent: bool) -> aiomqtt.Client:
    """``mqtt.link.make_client``, without aiomqtt's warning per publish past 10 in flight."""
    client = _make_client(address, identifier, persistent=persistent)
    client.pending_calls_threshold = 1 << 30
    return client


def _payload_bytes(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    return payload if isinstance(payload, bytes) else str(payload).encode()


@contextlib.asynccontextmanager
async def echo_responder(address: BrokerAddress) -> AsyncIterator[None]:
    """Answer every ``BASE/requests/<client>`` message on ``BASE/replies/<client>``."""
    client = make_client(address, "bench-echo-" + uuid.uuid4().hex[:8], persistent=False)
    async with client:
        await client.subscribe(f"{BASE}/requests/+", qos=1)
        pending: set[asyncio.Task[None]] = set()

        async def serve() -> None:
            async for message in client.messages:
                asker = str(message.topic).rsplit("/", 1)[1]
                task = asyncio.create_task(
                    client.publish(f"{BASE}/replies/{asker}", _payload_bytes(message), qos=1)
                )
                pending.add(task)
                task.add_done_callback(pending.discard)

        server = asyncio.create_task(serve())
        try:
            yield
        finally:
            server.cancel()
            await asyncio.gather(server, *pending, return_exceptions=True)


class Asker:
    """A bare request/response client: publish a request, wait for its echo."""

    def __init__(self, address: BrokerAddress) -> None:
        self.name = "bench-ask-" + uuid.uuid4().hex[:12]
        self._client = make_client(address, self.name, persistent=False)
        self._waiting: dict[bytes, asyncio.Future[float]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Asker:
        await self._client.__aenter__()
        await self._client.subscribe(f"{BASE}/replies/{self.name}", qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self._client.messages:
            key = _payload_bytes(message)[:32]
            future = self._waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

    async def ask(self, body: bytes) -> float:
        """One round trip of a request of ``body``'s size; its duration in seconds."""
        key = uuid.uuid4().hex.encode()
        payload = key + body[32:]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        start = time.perf_counter()
        publish = asyncio.ensure_future(
            self._client.publish(f"{BASE}/requests/{self.name}", payload, qos=1)
        )
        answered = await asyncio.wait_for(future, 30)
        await publish
        return answered - start


async def round_trips(address: BrokerAddress, body: bytes, count: int) -> list[float]:
    """``count`` sequential bare request/response round trips, in seconds each."""
    async with echo_responder(address), Asker(address) as asker:
        for _ in range(min(20, count)):  # warm-up
            await asker.ask(body)
        return [await asker.ask(body) for _ in range(count)]


async def round_trip_rate(address: BrokerAddress, body: bytes, clients: int, total: int) -> float:
    """Bare request/response per second with ``clients`` concurrent askers, ``total`` in all."""
    async with echo_responder(address):
        askers = [Asker(address) for _ in range(clients)]
        async with contextlib.AsyncExitStack() as stack:
            for asker in askers:
                await stack.enter_async_context(asker)
            per = max(1, total // clients)

            async def run(asker: Asker) -> None:
                for _ in range(per):
                    await asker.ask(body)

            start = time.perf_counter()
            await asyncio.gather(*(run(a) for a in askers))
            return per * clients / (time.perf_counter() - start)


async def one_way(address: BrokerAddress, body: bytes, count: int, gap: float) -> list[float]:
    """Publish-to-subscriber latencies of ``count`` QoS 1 messages sent one at a time."""
    topic = f"{BASE}/oneway/{uuid.uuid4().hex[:8]}"
    sub = make_client(address, "bench-sub-" + uuid.uuid4().hex[:8], persistent=False)
    pub = make_client(address, "bench-pub-" + uuid.uuid4().hex[:8], persistent=False)
    arrived: asyncio.Queue[float] = asyncio.Queue()
    async with sub, pub:
        await sub.subscribe(topic, qos=1)

        async def read() -> None:
            async for _ in sub.messages:
                arrived.put_nowait(time.perf_counter())

        reader = asyncio.create_task(read())
        try:
            latencies = []
            for i in range(count + 10):
                start = time.perf_counter()
                await pub.publish(topic, body, qos=1)
                latency = await asyncio.wait_for(arrived.get(), 30) - start
                if i >= 10:  # the first ten warm up
                    latencies.append(latency)
                await asyncio.sleep(gap)
            return latencies
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def publish_all(
    address: BrokerAddress, topic: str, payloads: list[bytes], publishers: int, window: int
) -> None:
    """Publish ``payloads`` at QoS 1 from ``publishers`` clients, ``window`` in flight each.

    Each publisher sends its share in order (so per-publisher order is kept).
    """

    async def publisher(share: list[bytes]) -> None:
        client = make_client(address, "bench-pub-" + uuid.uuid4().hex[:8], persistent=False)
        async with client:
            limit = asyncio.Semaphore(window)
            tasks = []

            async def send(payload: bytes) -> None:
                try:
                    await client.publish(topic, payload, qos=1, timeout=60)
                finally:
                    limit.release()

            for payload in share:
                await limit.acquire()
                tasks.append(asyncio.create_task(send(payload)))
            await asyncio.gather(*tasks)

    await asyncio.gather(*(publisher(payloads[i::publishers]) for i in range(publishers)))


async def publish_rate(
    address: BrokerAddress, payloads: list[bytes], publishers: int, window: int
) -> float:
    """Bare QoS 1 messages per second from publishers to one subscriber, all received."""
    topic = f"{BASE}/rate/{uuid.uuid4().hex[:8]}"
    sub = make_client(address, "bench-sub-" + uuid.uuid4().hex[:8], persistent=False)
    done = asyncio.Event()
    async with sub:
        await sub.subscribe(topic, qos=1)

        async def read() -> None:
            got = 0
            async for _ in sub.messages:
                got += 1
                if got == len(payloads):
                    done.set()

        reader = asyncio.create_task(read())
        try:
            start = time.perf_counter()
            await publish_all(address, topic, payloads, publishers, window)
            await asyncio.wait_for(done.wait(), 120)
            return len(payloads) / (time.perf_counter() - start)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


# ------------------------------------------------------------- paho processes (bench.paho)


def _paho(role: str, address: BrokerAddress, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python -m bench.paho role …`` and wait for its ``ready`` line."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.paho", role, "--host", address.host,
         "--port", str(address.port), *args],
        cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None  # noqa: S101 - asked for above
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"bench.paho {role} did not start: {line!r}")
    return proc


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Close its stdin (it exits then) and wait; kill it if it does not."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def paho_echo(address: BrokerAddress) -> Iterator[None]:
    """The paho echo responder, a process of its own, while the block runs."""
    proc = _paho("echo", address)
    try:
        yield
    finally:
        _end(proc)


class PahoLoad:
    """The paho load generator process (``python -m bench.paho load``): commands in, JSON out.

    ``kind`` ``bare`` asks the paho echo responder (``paho_echo``), ``start`` the stack.
    """

    def __init__(self, address: BrokerAddress, user: str, sla_file: Path, sla_name: str) -> None:
        self._proc = _paho(
            "load", address, "--user", user, "--sla", str(sla_file), "--sla-name", sla_name
        )

    def command(self, **command: Any) -> dict[str, Any]:  # noqa: ANN401 - JSON values
        """Send one command, wait for its result; its ``error`` raised."""
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the load generator has no pipes")
        stdin.write(json.dumps(command).encode() + b"\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError("the paho load generator exited")
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"paho load generator: {result['error']}")
        return result

    def ask(self, kind: str, count: int, mode: str = "loop") -> list[float]:
        """``count`` sequential round trips of ``kind`` (seconds each); a wrong answer raises."""
        result = self.command(op="ask", kind=kind, count=count, mode=mode)
        if result["wrong"]:
            raise RuntimeError(f"{len(result['wrong'])} wrong answers: {result['wrong'][:3]}")
        return [float(x) for x in result["latencies"]]

    def burst(self, kind: str, clients: int, total: int, budget: float) -> dict[str, Any]:
        """``clients`` concurrent askers, one request in flight each (``Load.burst``)."""
        return self.command(op="burst", kind=kind, clients=clients, total=total, budget=budget)

    def close(self) -> None:
        """End the process."""
        _end(self._proc)

    def __enter__(self) -> PahoLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PahoPrinter:
    """A paho subscriber process that prints every payload on ``topic`` on a line."""

    def __init__(self, address: BrokerAddress, topic: str) -> None:
        self.proc = _paho("print", address, "--topic", topic)

    def close(self) -> None:
        """End the process."""
        _end(self.proc)


def paho_one_way(address: BrokerAddress, body: bytes, count: int, gap: float) -> list[float]:
    """Latencies of ``count`` QoS 1 messages, each alone, from a paho publisher here to a
    paho subscriber process (``PahoPrinter``) printing it: the time runs until the line
    arrives on its stdout."""
    from bench.paho import Publisher  # noqa: PLC0415 - paho-only code

    topic = f"{BASE}/oneway/{uuid.uuid4().hex[:8]}"
    printer = PahoPrinter(address, topic)
    publisher = Publisher(address.host, address.port)
    out = printer.proc.stdout
    assert out is not None  # noqa: S101 - PahoPrinter asks for it
    try:
        latencies = []
        for i in range(count + 10):
            marker = f"{i:08d}".encode()
            payload = marker + body[len(marker) :]
            start = time.perf_counter()
            publisher.publish(topic, payload)
            while True:
                ready, _, _ = select.select([out], [], [], 30)
                if not ready:
                    raise RuntimeError("the paho printer printed nothing for 30s")
                line = out.readline()
                if line.startswith(marker):
                    break
            if i >= 10:  # the first ten warm up
                latencies.append(time.perf_counter() - start)
            publisher.pump()
            time.sleep(gap)
        return latencies
    finally:
        publisher.close()
        printer.close()

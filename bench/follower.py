"""Event to follower: a service publishes an event, a CLI follower prints it.

The follower is the installed ``flops log ID --follow`` in its own process; the time runs
from just before the service's publish to the moment the printed line arrives on the
follower's stdout, so the path includes the observer's durable write and its live
republish. The service is a paho publisher in this process (external loop: the publish is
written at once). Baselines, payloads of the same size, alternating with the events in
chunks: that paho publisher to a paho subscriber process printing each message (the time
runs until its line arrives, as for the follower), and an aiomqtt publisher to an aiomqtt
subscriber in this process. The target holds against the faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from bench import bare, starts
from bench.harness import FLOPS, USER, Mode, Row, Stack, bare_rows, ms, percentile
from bench.paho import Publisher
from mqtt.link import BrokerAddress
from mqtt.requester import session
from protocol import codec, topics
from protocol.events import Event

SCENARIO = "event to follower"
GAP = 0.01  # between events, so each one travels alone


async def _line_with(stream: asyncio.StreamReader, marker: bytes, timeout: float) -> float:
    """Read lines until one contains ``marker``; the time it arrived."""
    while True:
        line = await asyncio.wait_for(stream.readline(), timeout)
        if not line:
            raise RuntimeError("the follower exited")
        if marker in line:
            return time.perf_counter()


async def measure(
    stack: Stack, project_id: str, count: int, chunks: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Latencies of ``count`` events to the follower, and of ``count`` bare messages of
    each client library."""
    address: BrokerAddress = stack.broker.address
    topic = str(topics.events(USER, project_id))
    proc = await asyncio.create_subprocess_exec(
        FLOPS,
        "log",
        project_id,
        "--follow",
        env=stack.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    if proc.stdout is None:
        raise RuntimeError("no pipe from the follower")
    measured: list[float] = []
    baseline: dict[str, list[float]] = {"paho": [], "aiomqtt": []}
    publisher = Publisher(address.host, address.port)
    try:
        await _line_with(proc.stdout, b"New Builder service", 30)  # history printed
        body = b""
        per = max(1, count // chunks)
        i = 0
        while len(measured) < count:
            for _ in range(min(per, count - len(measured))):
                text = f"bench event {i:06d}"
                event = Event(project_id=project_id, source="benchsvc", text=text)
                payload = codec.encode(event)
                body = body or payload
                start = time.perf_counter()
                publisher.publish(topic, payload)
                arrived = await _line_with(proc.stdout, text.encode(), 30)
                publisher.pump()
                if i >= 5:  # the first five warm up
                    measured.append(arrived - start)
                i += 1
                await asyncio.sleep(GAP)
            baseline["paho"] += await asyncio.to_thread(bare.paho_one_way, address, body, per, GAP)
            baseline["aiomqtt"] += await bare.one_way(address, body, per, GAP)
    finally:
        publisher.close()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()
    return measured, baseline


async def _one_project(stack: Stack) -> str:
    async with session(stack.broker.address, USER, 60) as sess:
        return (await starts.start_once(sess, stack.sla))[1]


def run(stack: Stack, mode: Mode) -> list[Row]:
    """Run the scenario on ``stack`` (one new project); its rows."""
    project_id = asyncio.run(_one_project(stack))
    count = mode.n(500, 20)
    measured, baseline = asyncio.run(measure(stack, project_id, count, mode.n(5, 1)))
    rows = []
    for q in (50, 99):
        bares = {k: percentile(v, q) for k, v in baseline.items()}
        fastest = min(bares, key=lambda k: bares[k])
        others = ", ".join(f"{k} {ms(v)} ms" for k, v in bares.items())
        row = Row(
            SCENARIO,
            f"p{q} service publish to follower printing, {count} events",
            ms(percentile(measured, q)),
            "ms",
            ms(bares[fastest]),
            "<= 3x baseline" if q == 50 else "",
            note=f"baseline: the faster bare QoS 1 publish to a subscriber ({fastest}); "
            f"bare p{q}: {others}",
        )
        if q == 50:
            row.met = row.ratio is not None and row.ratio <= 3
        rows.append(row)
    rows += bare_rows(SCENARIO, "bare publish to subscriber", baseline, "messages")
    return rows

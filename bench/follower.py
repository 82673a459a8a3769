"""Event to follower: a service publishes an event, a CLI follower prints it.

The follower is the installed ``flops log ID --follow`` in its own process; the time runs
from just before the service's publish to the moment the printed line arrives on the
follower's stdout, so the path includes the observer's durable write and its live
republish. Baseline: a bare QoS 1 publish to a subscriber (aiomqtt both ends) of a payload
of the same size. Both alternate in chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from bench import bare, starts
from bench.harness import FLOPS, USER, Mode, Row, Stack, ms, percentile
from mqtt.link import BrokerAddress, make_client
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
) -> tuple[list[float], list[float]]:
    """Latencies of ``count`` events to the follower, and of ``count`` bare messages."""
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
    baseline: list[float] = []
    try:
        publisher = make_client(address, "bench-service", persistent=False)
        async with publisher:
            await _line_with(proc.stdout, b"FLOps images ready", 30)  # history printed
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
                    await publisher.publish(topic, payload, qos=1)
                    arrived = await _line_with(proc.stdout, text.encode(), 30)
                    if i >= 5:  # the first five warm up
                        measured.append(arrived - start)
                    i += 1
                    await asyncio.sleep(GAP)
                baseline += await bare.one_way(address, body, per, GAP)
    finally:
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
        row = Row(
            SCENARIO,
            f"p{q} service publish to follower printing, {count} events",
            ms(percentile(measured, q)),
            "ms",
            ms(percentile(baseline, q)),
            "<= 3x baseline" if q == 50 else "",
            note="baseline: bare QoS 1 publish to subscriber" if q == 50 else "",
        )
        if q == 50:
            row.met = row.ratio is not None and row.ratio <= 3
        rows.append(row)
    return rows

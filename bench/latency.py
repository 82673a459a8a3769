"""Project start latency: one client, sequential starts, publish to answer.

Baseline: a bare request/response round trip (aiomqtt to an echo responder) through the
same broker, with a request of the same size. Starts and baseline round trips alternate in
chunks, so a burst of load from elsewhere on the machine hits both alike.
"""

from __future__ import annotations

import asyncio

from bench import bare, starts
from bench.harness import USER, Mode, Row, Stack, ms, percentile
from mqtt.link import BrokerAddress
from mqtt.requester import session

SCENARIO = "start latency"


async def measure(
    address: BrokerAddress, sla: dict[str, object], count: int, chunks: int
) -> tuple[list[float], list[float]]:
    """``count`` starts and ``count`` bare round trips, alternating in ``chunks``."""
    body = starts.request_body(dict(sla))
    measured: list[float] = []
    baseline: list[float] = []
    per = max(1, count // chunks)
    async with (
        bare.echo_responder(address),
        bare.Asker(address) as asker,
        session(address, USER, 60) as sess,
    ):
        for _ in range(min(20, count)):  # warm-up of the bare path (no project made)
            await asker.ask(body)
        while len(measured) < count:
            n = min(per, count - len(measured))
            baseline += [await asker.ask(body) for _ in range(n)]
            for _ in range(n):
                measured.append((await starts.start_once(sess, dict(sla)))[0])
    return measured, baseline


def run(stack: Stack, mode: Mode) -> list[Row]:
    """Run the scenario on a fresh ``stack``; its rows."""
    count = mode.n(1000, 20)
    measured, baseline = asyncio.run(measure(stack.broker.address, stack.sla, count, mode.n(10, 2)))
    tenth = max(1, count // 10)
    drift = (
        f"p50 of the first {tenth} starts {ms(percentile(measured[:tenth], 50))} ms, "
        f"of the last {tenth} {ms(percentile(measured[-tenth:], 50))} ms"
    )
    rows = []
    for q, limit in ((50, 3.0), (99, 5.0)):
        row = Row(
            SCENARIO,
            f"p{q} publish to answer, {count} sequential starts",
            ms(percentile(measured, q)),
            "ms",
            ms(percentile(baseline, q)),
            f"<= {limit:g}x baseline",
            note=drift if q == 50 else "baseline: bare MQTT request/response round trip",
        )
        row.met = row.ratio is not None and row.ratio <= limit
        rows.append(row)
    return rows

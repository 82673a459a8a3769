"""Project start latency: one client, sequential starts, publish to answer.

The starts are sent by the paho load generator (``bench.paho``, a process of its own), and
also by the CLI's own request code (``mqtt.requester.Session`` on ``mqtt.client``) in this
process.
Baselines, through the same broker with requests of the same size: bare round trips of
paho at both ends (the load generator to the paho echo responder process, in paho's
external-loop and its thread mode) and of aiomqtt at both ends. The targets hold against
the fastest of them, quantile by quantile. Everything alternates in chunks, so a burst of
load from elsewhere on the machine hits all alike.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bench import bare, starts
from bench.harness import CONTROL_PLANE, USER, Mode, Row, Stack, bare_rows, ms, percentile
from mqtt.requester import session

SCENARIO = "start latency"
PAHO_MODES = ("loop", "thread")


@dataclass
class Samples:
    """Round trips in seconds, by what made them."""

    starts: list[float] = field(default_factory=list)  # paho load generator -> stack
    session_starts: list[float] = field(default_factory=list)  # the CLI's request code
    bare: dict[str, list[float]] = field(default_factory=dict)  # by client: paho-loop, …
    cpu: float = 0.0  # CPU seconds of the stack while the paho load generator's starts ran

    def fastest(self, q: float) -> tuple[str, float]:
        """The bare client with the lowest ``q``-th percentile, and that percentile."""
        return min(((k, percentile(v, q)) for k, v in self.bare.items()), key=lambda x: x[1])


async def measure(stack: Stack, count: int, chunks: int) -> Samples:
    """``count`` starts of each client and ``count`` bare round trips of each, in chunks."""
    address = stack.broker.address
    sla = dict(stack.sla)
    body = starts.request_body(sla)
    clients = [f"paho-{m}" for m in PAHO_MODES] + ["aiomqtt"]
    got = Samples(bare={name: [] for name in clients})
    per = max(1, count // chunks)
    with bare.paho_echo(address), stack.paho_load() as load:
        async with (
            bare.echo_responder(address),
            bare.Asker(address) as asker,
            session(address, USER, 60) as sess,
        ):
            for _ in range(min(20, count)):  # warm-up of the aiomqtt bare path
                await asker.ask(body)
            while len(got.starts) < count:
                n = min(per, count - len(got.starts))
                for mode in PAHO_MODES:
                    got.bare["paho-" + mode] += await asyncio.to_thread(load.ask, "bare", n, mode)
                got.bare["aiomqtt"] += [await asker.ask(body) for _ in range(n)]
                cpu = stack.cpu_seconds()
                got.starts += await asyncio.to_thread(load.ask, "start", n, "loop")
                got.cpu += stack.cpu_seconds() - cpu
                for _ in range(n):
                    got.session_starts.append((await starts.start_once(sess, sla))[0])
    return got


def run(stack: Stack, mode: Mode) -> list[Row]:
    """Run the scenario on a fresh ``stack``; its rows."""
    count = mode.n(1000, 20)
    got = asyncio.run(measure(stack, count, mode.n(10, 2)))
    tenth = max(1, count // 10)
    drift = (
        f"p50 of the first {tenth} starts {ms(percentile(got.starts[:tenth], 50))} ms, "
        f"of the last {tenth} {ms(percentile(got.starts[-tenth:], 50))} ms"
    )
    rows = []
    for q, limit in ((50, 3.0), (99, 5.0)):
        name, fastest = got.fastest(q)
        others = ", ".join(f"{k} {ms(percentile(v, q))} ms" for k, v in got.bare.items())
        row = Row(
            SCENARIO,
            f"p{q} publish to answer, {count} sequential starts (paho load generator)",
            ms(percentile(got.starts, q)),
            "ms",
            ms(fastest),
            f"<= {limit:g}x baseline",
            note=f"baseline: the fastest bare round trip ({name}); bare p{q}: {others}"
            + (f"; {drift}" if q == 50 else "")
            + f"; {CONTROL_PLANE}",
        )
        row.met = row.ratio is not None and row.ratio <= limit
        rows.append(row)
    rows.append(
        Row(
            SCENARIO,
            "stack CPU per sequential start",
            ms(got.cpu / max(1, len(got.starts))),
            "ms",
            note="user + system CPU of the stack process while the paho load generator's "
            "starts ran (clock ticks: coarse per chunk, fine over the run)",
        )
    )
    rows += bare_rows(SCENARIO, "bare round trip", got.bare, "round trips")
    for q in (50, 99):
        rows.append(
            Row(
                SCENARIO,
                f"p{q} start through the CLI's request code (mqtt.client), {count} sequential",
                ms(percentile(got.session_starts, q)),
                "ms",
                ms(got.fastest(q)[1]),
                note=f"the aiomqtt bare round trip: p{q} {ms(percentile(got.bare['aiomqtt'], q))}"
                " ms",
            )
        )
    return rows

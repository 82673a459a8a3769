"""Project start throughput: many concurrent clients, nothing lost, nothing doubled.

The clients are those of the paho load generator (``bench.paho``, a process of its own),
one start in flight each; a ``busy`` answer is honoured (the same request again after a
short pause with jitter). Baselines: bare request/response per second with as many
concurrent askers, paho at both ends (the load generator and the paho echo responder
process) and aiomqtt at both ends; the ratio is to the faster. After the burst the stack's
own database is the ground truth: one project per request id, each the one answered, and
every project is followed until it rests: ``BUILDING`` on the benchmark runtime (services
recorded, not run), ``IMAGES_READY`` once its images are built or reused on the local one.
"""

from __future__ import annotations

import asyncio
import time

from bench import bare, starts
from bench.harness import CONTROL_PLANE, Mode, Row, Stack, ms

SCENARIO = "start throughput"


def settle(stack: Stack, timeout: float) -> tuple[dict[str, int], float]:
    """Wait until no project is ``STARTING`` (or ``timeout``); states counted, seconds."""
    start = time.perf_counter()
    while True:
        states = dict(stack.sql("manager.db", "SELECT state, COUNT(*) FROM projects GROUP BY 1"))
        if not states.get("STARTING") or time.perf_counter() - start > timeout:
            return {str(k): int(v) for k, v in states.items()}, time.perf_counter() - start
        time.sleep(0.5)


def run(stack: Stack, mode: Mode, budget: float) -> list[Row]:
    """Run the scenario on a fresh ``stack``; at most ``budget`` seconds of sending."""
    clients, total = mode.n(100, 4), mode.n(20_000, 40)
    address = stack.broker.address
    body = starts.request_body(stack.sla)
    aio = asyncio.run(bare.round_trip_rate(address, body, clients, mode.n(20_000, 200)))
    with bare.paho_echo(address), stack.paho_load() as load:
        paho = load.burst("bare", clients, mode.n(20_000, 200), budget)
        base_paho = len(paho["answers"]) / paho["seconds"]
        cpu = stack.cpu_seconds()
        result = starts.Burst.of(load.burst("start", clients, total, budget))
        cpu = stack.cpu_seconds() - cpu
    base = max(aio, base_paho)
    states, waited = settle(stack, mode.n(120, 30))
    rows = stack.sql("manager.db", "SELECT request_id, id FROM projects")
    stored = {str(r): str(p) for r, p in rows}
    answered = result.answers
    lost = [r for r in answered if r not in stored]  # answered, yet no project
    wrong = [r for r, p in answered.items() if r in stored and stored[r] != p]
    unanswered = len(result.failed)
    doubled = result.doubled + (len(rows) - len(stored)) + len(wrong)
    extra = len(stored) - len(answered)  # projects of requests whose answer never came
    scope = f"{result.requested} of {total} starts sent"
    if result.requested < total:
        scope += f" (the {budget:g}s budget ran out)"
    k = min(1000, len(result.times) // 2)
    if k > 1:
        first, last = result.rate_over(slice(0, k)), result.rate_over(slice(-k, None))
        scope += f"; first {k} answers at {first:.0f}/s, last {k} at {last:.0f}/s"
    resting = states.get("BUILDING", 0) + states.get("IMAGES_READY", 0)
    rate = Row(
        SCENARIO,
        f"answered starts/s, {clients} concurrent clients",
        round(result.rate, 1),
        "starts/s",
        round(base, 1),
        ">= 1000 starts/s",
        met=result.rate >= 1000,
        note=f"{scope} in {result.seconds:.1f}s; {result.busy} busy answers; baseline: the "
        f"faster bare request/response per second, paho {base_paho:.0f}/s, aiomqtt {aio:.0f}/s; "
        + CONTROL_PLANE,
    )
    exact = Row(
        SCENARIO,
        "lost or doubled starts",
        float(len(lost) + doubled + unanswered),
        "starts",
        target="0",
        note=f"unanswered {unanswered}, answered without project {len(lost)}, doubled "
        f"{doubled}, made but unanswered {extra}",
    )
    exact.met = exact.value == 0
    rested = Row(
        SCENARIO,
        "started projects not reaching BUILDING or IMAGES_READY",
        float(len(stored) - resting),
        "projects",
        target="0",
        met=len(stored) == resting,
        note=f"states after {waited:.0f}s of settling: {states}",
    )
    per_start = Row(
        SCENARIO,
        "stack CPU per answered start, during the burst",
        ms(cpu / max(1, len(answered))),
        "ms",
        note=f"user + system CPU of the stack process: {cpu:.1f}s for {len(answered)} starts "
        "(the work a start leaves for later, its log entries and first stage, mostly included)",
    )
    bares = [
        Row(SCENARIO, f"bare request/response per second, {clients} askers, {name}",
            round(value, 1), "round trips/s")
        for name, value in (("paho", base_paho), ("aiomqtt", aio))
    ]  # fmt: skip
    return [rate, exact, rested, per_start, *bares]

"""Scale: memory of the whole stack and start latency with 10, 1,000 and 10,000 projects.

One fresh stack is filled level by level (concurrent starts, each project with its
observer and its resting builder); at each level it waits until no project is starting,
then measures the resident memory (VmRSS of the stack process plus mosquitto's) and the
p50/p99 of sequential starts, and counts the live projects with ``flops projects``. The
baseline of every figure is the same stack at the first level (10 projects). Filling stops
when the time budget runs out; the largest level reached is then measured and named.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass

from bench import starts
from bench.harness import USER, Mode, Row, Stack, ms, percentile
from bench.throughput import settle
from mqtt.requester import session

SCENARIO = "scale"
FILLERS = 10  # concurrent clients while filling
TARGET_LEVEL = 10_000  # where the targets apply
MEASURE_SECONDS = 30.0  # of sequential starts per level, at most (past 20 samples)


@dataclass
class Level:
    """What one level measured."""

    wanted: int
    live: int
    listed: str  # what `flops projects` said
    rss_mb: float
    p50: float
    p99: float
    samples: int


def listed(stack: Stack) -> str:
    """How many projects ``flops projects`` lists (against the database), or why not.

    Run after the level's other figures: it may disturb the stack.
    """
    start = time.perf_counter()
    done = stack.cli("projects", "--output", "json", timeout=120)
    took = time.perf_counter() - start
    stored = stack.sql("manager.db", "SELECT COUNT(*) FROM projects")[0][0]
    reconnects = stack.log_count("reconnecting in")
    if done.returncode == 0:
        listed = len(json.loads(done.stdout)["projects"])
        return f"`flops projects` listed {listed} of {stored} in {took:.1f}s"
    error = " ".join((done.stdout + done.stderr).split())
    error = error.split('"message": ', 1)[-1][:90]
    return (
        f"`flops projects` failed after {took:.1f}s with {stored} stored (exit "
        f"{done.returncode}: {error}); stack reconnects so far: {reconnects}"
    )


def live(stack: Stack) -> int:
    """Projects whose start completed (BUILDING or built), from the manager's database."""
    query = "SELECT COUNT(*) FROM projects WHERE state IN ('BUILDING', 'IMAGES_READY')"
    return int(stack.sql("manager.db", query)[0][0])


def measure(stack: Stack, wanted: int, samples: int, seconds: float) -> Level:
    """Memory, sequential start latency and the listed count at the current level."""
    time.sleep(1.0)  # let the last builders' events settle
    count = live(stack)
    rss = stack.rss_mb()

    async def timed() -> list[float]:
        deadline = time.perf_counter() + seconds
        out: list[float] = []
        async with session(stack.broker.address, USER, 60) as sess:
            for _ in range(3):
                await starts.start_once(sess, stack.sla)  # warm-up
            while len(out) < samples and (len(out) < 20 or time.perf_counter() < deadline):
                out.append((await starts.start_once(sess, stack.sla))[0])
        return out

    latencies = asyncio.run(timed())
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return Level(wanted, count, listed(stack), rss, p50, p99, len(latencies))


def run(stack: Stack, mode: Mode, budget: float) -> list[Row]:
    """Fill a fresh ``stack`` level by level within ``budget`` seconds; its rows."""
    levels = [10, 1_000, 10_000] if not mode.short else [10, 20, 40]
    samples = mode.n(200, 10)
    end = time.perf_counter() + budget
    measured: list[Level] = []
    for wanted in levels:
        missing = wanted - live(stack)
        if missing > 0:
            remaining = end - time.perf_counter() - mode.n(int(MEASURE_SECONDS) + 30, 3)
            if remaining < mode.n(5, 1) and measured:
                break
            clients = min(FILLERS, missing)
            address = stack.broker.address
            asyncio.run(starts.burst(address, stack.sla, clients, missing, budget=remaining))
            settle(stack, mode.n(90, 20))
        seconds = mode.n(int(MEASURE_SECONDS), 2)
        measured.append(measure(stack, wanted, samples, seconds))
        if measured[-1].live < wanted:
            break
    base = measured[0]
    rows = []
    for level in measured:
        last = level is measured[-1]
        short_of = "" if level.live >= level.wanted else f" (wanted {level.wanted})"
        reached = f"{level.live} live projects{short_of}"
        note = f"{reached}; {level.listed}"
        if last and level.live < levels[-1]:
            note += f"; {levels[-1]} did not fit the {budget:g}s budget: this is the largest level"
        memory = Row(
            SCENARIO,
            f"RSS of stack + mosquitto, {reached}",
            round(level.rss_mb, 1),
            "MiB",
            round(base.rss_mb, 1),
            "<= 1536 MiB at 10,000" if last else "",
            note=note,
        )
        p99 = Row(
            SCENARIO,
            f"start latency p99, {reached}",
            ms(level.p99),
            "ms",
            ms(base.p99),
            "<= 2x p99 at 10" if last else "",
            note=f"p50 {ms(level.p50)} ms over {level.samples} sequential starts",
        )
        if last and level.live >= TARGET_LEVEL:
            memory.met = level.rss_mb <= 1536
            p99.met = p99.ratio is not None and p99.ratio <= 2
        elif last and not mode.short:  # the target level not reached: a miss if already over
            memory.met = False if level.rss_mb > 1536 else None
            p99.met = False if (p99.ratio or 0) > 2 else None
        rows += [memory, p99]
    start = time.perf_counter()
    code = stack.stop(wait=mode.n(30, 10))
    took = time.perf_counter() - start
    rows.append(
        Row(
            SCENARIO,
            "seconds for the filled stack to stop on SIGTERM",
            round(took, 2),
            "s",
            note=f"exit {code}" + (": did not stop, killed" if code == -signal.SIGKILL else ""),
        )
    )
    return rows

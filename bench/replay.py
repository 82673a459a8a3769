"""Log replay: read a long observer log from the start, and fetch its last 100 entries.

Both go through the CLI's own code (``mqtt.follow.read_log`` on a ``Session``, pages of
``mqtt.follow.PAGE`` entries) in this process, on a connected session; the installed
``flops log ID`` printing the whole log is timed too, as a whole process. No baseline: the
issue sets absolute targets.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

from bench.harness import FLOPS, USER, Mode, Row, Stack, median, ms, percentile
from mqtt.follow import read_log
from mqtt.requester import session
from protocol.events import LogEntry

SCENARIO = "log replay"


async def measure(
    stack: Stack, project_id: str, rounds: int, tails: int
) -> tuple[int, float, list[float]]:
    """Entries per full read, the median seconds of ``rounds`` reads, last-100 fetch times."""
    count = 0

    def emit(_entry: LogEntry) -> None:
        nonlocal count
        count += 1

    full: list[float] = []
    tail: list[float] = []
    async with session(stack.broker.address, USER, 60) as sess:
        for _ in range(rounds):
            count = 0
            start = time.perf_counter()
            await read_log(sess, project_id, emit, timeout=60)
            full.append(time.perf_counter() - start)
        entries = count
        for _ in range(tails + 3):
            count = 0
            start = time.perf_counter()
            await read_log(sess, project_id, emit, timeout=60, last=100)
            tail.append(time.perf_counter() - start)
            if count != min(100, entries):
                raise RuntimeError(f"asked for the last 100 entries, got {count}")
    return entries, median(full), tail[3:]


def run(stack: Stack, project_id: str, mode: Mode) -> list[Row]:
    """Run the scenario on the project whose log the ingest scenario filled."""
    entries, seconds, tails = asyncio.run(measure(stack, project_id, mode.n(2, 1), mode.n(50, 5)))
    start = time.perf_counter()
    printed = subprocess.run(
        [FLOPS, "log", project_id],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    wall = time.perf_counter() - start
    lines = printed.stdout.count(b"\n")
    rate = entries / seconds if seconds else 0.0
    tail_ms = ms(median(tails))
    return [
        Row(
            SCENARIO,
            f"entries/s replaying a {entries}-entry log (read_log, in process)",
            round(rate, 1),
            "entries/s",
            target=">= 50000 entries/s",
            met=rate >= 50_000,
            note=f"best of the full reads: {seconds:.2f}s",
        ),
        Row(
            SCENARIO,
            "fetch of the last 100 entries, median",
            tail_ms,
            "ms",
            target="<= 20 ms",
            met=tail_ms <= 20,
            note=f"p99 {ms(percentile(tails, 99))} ms over {len(tails)} fetches",
        ),
        Row(
            SCENARIO,
            f"entries/s printed by `flops log ID` ({lines} lines, whole process)",
            round(lines / wall, 1) if wall else None,
            "entries/s",
            note=f"{wall:.2f}s wall time, exit {printed.returncode}",
        ),
    ]

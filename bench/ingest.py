"""Observer ingest: events per second stored durably by the stack's observer, none lost.

Live: several service clients (aiomqtt) publish distinct events to one project at QoS 1,
a window of publishes in flight each, while the stack runs. Backlog: with the stack
stopped, the broker queues more events for its persistent session; the restarted stack
drains them, with no publisher in the way. An event counts as stored when the observer
republishes its log entry, which it does only after the SQLite commit; the observer's
database is checked at the end (every event once, sequence numbers without gaps).
Baseline: the same payloads from the same publishers to a bare aiomqtt subscriber.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid

from bench import bare, starts
from bench.harness import USER, Mode, Row, Stack
from mqtt.link import BrokerAddress
from mqtt.requester import session
from protocol import codec, topics
from protocol.events import Event

SCENARIO = "observer ingest"
PUBLISHERS, WINDOW = 4, 100
MARK = b'"text":"ingest '


def events(project_id: str, count: int, kind: str) -> list[bytes]:
    """``count`` distinct encoded events of ``project_id``."""
    return [
        codec.encode(
            Event(project_id=project_id, source=f"svc{i % PUBLISHERS}", text=f"ingest {kind} {i}")
        )
        for i in range(count)
    ]


class Watcher:
    """Counts the live log entries of our events; their arrival times bound the rate."""

    def __init__(self, address: BrokerAddress, project_id: str, expected: int) -> None:
        self.client = bare.make_client(
            address, "bench-watch-" + uuid.uuid4().hex[:8], persistent=False
        )
        self.topic = str(topics.log(USER, project_id))
        self.expected = expected
        self.seen = 0
        self.first = self.last = 0.0
        self.done = asyncio.Event()

    async def watch(self) -> None:
        """Count until cancelled."""
        async for message in self.client.messages:
            if isinstance(message.payload, bytes) and MARK in message.payload:
                self.last = time.perf_counter()
                self.first = self.first or self.last
                self.seen += 1
                if self.seen == self.expected:
                    self.done.set()


async def live(stack: Stack, project_id: str, payloads: list[bytes], budget: float) -> Watcher:
    """Publish ``payloads`` to the running stack; the watcher, timed from the first publish."""
    watcher = Watcher(stack.broker.address, project_id, len(payloads))
    async with watcher.client:
        await watcher.client.subscribe(watcher.topic, qos=1)
        reader = asyncio.create_task(watcher.watch())
        start = time.perf_counter()
        try:
            topic = str(topics.events(USER, project_id))
            await bare.publish_all(stack.broker.address, topic, payloads, PUBLISHERS, WINDOW)
            await asyncio.wait_for(
                watcher.done.wait(), max(1.0, budget - (time.perf_counter() - start))
            )
        except TimeoutError:
            pass
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        watcher.first = start
        return watcher


def queue_backlog(stack: Stack, project_id: str, payloads: list[bytes]) -> None:
    """Publish ``payloads`` while the stack is down (mosquitto_pub if there is one)."""
    topic = str(topics.events(USER, project_id))
    tool = shutil.which("mosquitto_pub")
    if tool is None:
        address = stack.broker.address
        asyncio.run(bare.publish_all(address, topic, payloads, PUBLISHERS, WINDOW))
        return
    port = str(stack.broker.port)
    subprocess.run(
        [tool, "-h", "127.0.0.1", "-p", port, "-t", topic, "-q", "1", "-l"],
        input=b"\n".join(payloads) + b"\n",
        check=True,
        timeout=300,
    )


async def drain(stack: Stack, project_id: str, expected: int, budget: float) -> Watcher:
    """Start the stack and watch it store the backlog; timed from first to last entry."""
    watcher = Watcher(stack.broker.address, project_id, expected)
    async with watcher.client:
        await watcher.client.subscribe(watcher.topic, qos=1)
        reader = asyncio.create_task(watcher.watch())
        try:
            await asyncio.to_thread(stack.start)
            await asyncio.wait_for(watcher.done.wait(), budget)
        except TimeoutError:
            pass
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        return watcher


async def _quiet_project(stack: Stack) -> str:
    """A new project that has rested (its builder announced the build)."""
    async with session(stack.broker.address, USER, 60) as sess:
        project_id = (await starts.start_once(sess, stack.sla))[1]
    for _ in range(600):
        rows = stack.sql("manager.db", "SELECT state FROM projects WHERE id=?", project_id)
        if rows and rows[0][0] != "STARTING":
            break
        await asyncio.sleep(0.05)
    return project_id


def rate(w: Watcher) -> float:
    """Stored events per second seen by ``w``."""
    return w.seen / (w.last - w.first) if w.last > w.first else 0.0


def run(stack: Stack, mode: Mode, budget: float) -> tuple[list[Row], str]:
    """Run the scenario on a fresh ``stack``; its rows and the project whose log it filled."""
    project_id = asyncio.run(_quiet_project(stack))
    n_live, n_backlog = mode.n(40_000, 500), mode.n(60_000, 500)
    address = stack.broker.address
    sample = events(project_id, mode.n(20_000, 500), "bare")
    before = asyncio.run(bare.publish_rate(address, sample, PUBLISHERS, WINDOW))
    watched = asyncio.run(live(stack, project_id, events(project_id, n_live, "live"), budget / 2))
    after = asyncio.run(bare.publish_rate(address, sample, PUBLISHERS, WINDOW))
    stack.stop()
    queue_backlog(stack, project_id, events(project_id, n_backlog, "backlog"))
    drained = asyncio.run(drain(stack, project_id, n_backlog, budget / 2))
    time.sleep(0.5)
    total, distinct, top = stack.sql(
        "observer.db",
        "SELECT COUNT(*), COUNT(DISTINCT event_id), MAX(seq) FROM entries WHERE project_id=?",
        project_id,
    )[0]
    ingested = stack.sql(
        "observer.db",
        "SELECT COUNT(*) FROM entries WHERE project_id=? AND text LIKE 'ingest %'",
        project_id,
    )[0][0]
    baseline = round((before + after) / 2, 1)
    gapless = total == distinct == top
    lost = n_live + n_backlog - int(ingested)
    bare_note = f"baseline: bare QoS 1 publish rate (before {before:.0f}/s, after {after:.0f}/s)"
    return [
        Row(
            SCENARIO,
            f"events/s stored durably, live, {n_live} events from {PUBLISHERS} publishers",
            round(rate(watched), 1),
            "events/s",
            baseline,
            ">= 5000 events/s",
            met=rate(watched) >= 5000,
            note=f"{watched.seen} stored in {watched.last - watched.first:.1f}s; {bare_note}",
        ),
        Row(
            SCENARIO,
            f"events/s stored durably, {n_backlog}-event backlog drained after a restart",
            round(rate(drained), 1),
            "events/s",
            baseline,
            ">= 5000 events/s",
            met=rate(drained) >= 5000,
            note=f"{drained.seen} stored in {drained.last - drained.first:.1f}s from the first "
            "stored to the last; no publisher in the way",
        ),
        Row(
            SCENARIO,
            "events lost (or sequence gaps)",
            float(lost + (0 if gapless else 1)),
            "events",
            target="0",
            met=lost == 0 and gapless,
            note=f"{ingested} of {n_live + n_backlog} in the log; {total} entries, seq 1..{top}, "
            f"{'gapless' if gapless else 'GAPS OR DUPLICATES'}",
        ),
    ], project_id

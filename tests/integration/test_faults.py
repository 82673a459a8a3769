"""Nothing lost, nothing doubled: kill -9, SIGTERM, broker restarts, silent services.

Each test has its own mosquitto (with persistence) and stack process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from mqtt.link import make_client
from mqtt.requester import session
from protocol import codec, topics
from protocol.events import Event
from protocol.messages import CreateProject, LogPage, LogQuery, ProjectView, new_request_id
from slas import bundled_dir
from tests.conftest import BrokerProcess
from tests.integration.conftest import Stack, make_stack, start

pytestmark = pytest.mark.timeout(180)
CLIENTS, PER_CLIENT = 6, 50  # 300 project starts


def sla_for(stack: Stack) -> dict[str, Any]:
    sla: dict[str, Any] = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla["ml_repo_url"] = f"file://{stack.repo}"  # type: ignore[attr-defined]
    return sla


async def burst(
    broker: BrokerProcess,
    sla: dict[str, Any],
    answered: list[tuple[str, str]],
    timeout: float = 90,
    clients: int = CLIENTS,
    per_client: int = PER_CLIENT,
) -> None:
    """Concurrent clients, each starting ``per_client`` projects, 5 in flight at a time."""

    async def client() -> None:
        async with session(broker.address, "Admin", timeout) as sess:
            limit = asyncio.Semaphore(5)

            async def one() -> None:
                async with limit:
                    req = CreateProject(
                        request_id=new_request_id(),
                        reply_to=sess.client_id,
                        sla=sla,
                        sla_name="burst.json",
                    )
                    view = await sess.request(
                        topics.request("Admin", topics.Op.CREATE_PROJECT), req, ProjectView, timeout
                    )
                    answered.append((req.request_id, view.id))

            await asyncio.gather(*(one() for _ in range(per_client)))

    await asyncio.gather(*(client() for _ in range(clients)))


async def wait_for(condition: Any, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


async def assert_one_project_per_request(stack: Stack, answered: list[tuple[str, str]]) -> None:
    """Exactly one project per request id, each the one answered, and all of them started."""
    projects: Any = []

    def all_started() -> bool:
        projects[:] = stack.cli_json("projects")["projects"]
        return all(p["state"] == "IMAGES_READY" for p in projects)

    await wait_for(all_started, 60)  # starts a crash interrupted are finished
    by_request = {p["request_id"]: p["id"] for p in projects}
    assert len(answered) == CLIENTS * PER_CLIENT
    assert len({rid for rid, _ in answered}) == len(answered)
    assert len(projects) == len(answered)  # nothing doubled
    assert all(by_request[rid] == pid for rid, pid in answered)  # the answer is the project


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
async def test_a_manager_killed_mid_burst_answers_every_request_once(
    tmp_path: Path, broker: BrokerProcess, sig: int
) -> None:
    stack = make_stack(tmp_path, broker)
    start(stack, broker)
    answered: list[tuple[str, str]] = []
    clients = asyncio.create_task(burst(broker, sla_for(stack), answered))
    await wait_for(lambda: len(answered) >= 60)
    code = stack.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    killed_at = len(answered)
    start(stack, broker)
    await clients
    assert killed_at < CLIENTS * PER_CLIENT  # the kill really hit the middle of the burst
    await assert_one_project_per_request(stack, answered)
    stack.stop()


async def test_a_broker_restart_mid_burst_loses_nothing(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack = make_stack(tmp_path, broker)
    start(stack, broker)
    answered: list[tuple[str, str]] = []
    clients = asyncio.create_task(burst(broker, sla_for(stack), answered))
    await wait_for(lambda: len(answered) >= 60)
    broker.stop()
    broker.start()
    await clients
    await assert_one_project_per_request(stack, answered)
    assert stack.stop() == 0


async def test_an_observer_killed_mid_stream_keeps_every_event_once_in_order(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack, pid, base = started_project(tmp_path, broker)
    sources, per_source = 3, 1000

    async def publish(source: int) -> None:
        async with make_client(broker.address, f"svc-{source}", persistent=False) as client:
            for i in range(per_source):
                event = Event(project_id=pid, source=f"svc{source}", text=f"{source}:{i}")
                await client.publish(str(topics.events("Admin", pid)), codec.encode(event), qos=1)

    publishers = asyncio.gather(*(publish(s) for s in range(sources)))
    await asyncio.sleep(0.3)
    assert stack.stop(signal.SIGKILL) == -signal.SIGKILL
    await publishers
    start(stack, broker)
    total = base + sources * per_source
    entries: list[dict[str, Any]] = []

    def complete() -> bool:
        entries[:] = read_all(stack, pid)
        return len(entries) >= total

    await wait_for(complete, 60)
    assert [e["seq"] for e in entries] == list(range(1, total + 1))  # gapless
    texts = [e["text"] for e in entries[base:]]
    assert len(set(texts)) == len(texts) == sources * per_source  # each once
    for s in range(sources):  # in publish order per source
        mine = [int(t.split(":")[1]) for t in texts if t.startswith(f"{s}:")]
        assert mine == list(range(per_source))
    stack.stop()


def started_project(tmp_path: Path, broker: BrokerProcess) -> tuple[Stack, str, int]:
    """A running stack with one project started by the CLI (resting: its images built),
    that project's id and how many entries its log has."""
    stack = make_stack(tmp_path, broker)
    start(stack, broker)
    started: Any = stack.cli_json("project", "--project-sla-file-name", "mnist_sklearn_small")
    return stack, str(started["project"]["id"]), len(started["log"])


def read_all(stack: Stack, project_id: str) -> list[dict[str, Any]]:
    log: Any = stack.cli_json("log", project_id)
    return list(log["entries"])


async def test_a_builder_that_never_reports_fails_the_project_at_the_deadline(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "git").write_text("#!/bin/sh\nexec sleep 600\n")
    (fake_bin / "git").chmod(0o755)
    stack = make_stack(
        tmp_path, broker, FLOPS_SERVICE_DEADLINE="2", PATH=f"{fake_bin}:{os.environ['PATH']}"
    )
    start(stack, broker)
    done = stack.cli("project", "--project-sla-file-name", "mnist_sklearn_small")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Project failed: service builder" in done.stdout
    assert "never reported within 2s of its deployment" in done.stdout
    pid = json.loads(stack.cli("projects", "-o", "json").stdout)["projects"][0]["id"]
    shown: Any = stack.cli_json("status", pid)
    assert shown["state"] == "FAILED"
    builder = next(s for s in shown["services"] if s["kind"] == "builder")
    assert builder["instances"][0]["status"] == "FAILED"
    stack.stop()


async def test_log_query_pages_through_a_long_log(tmp_path: Path, broker: BrokerProcess) -> None:
    stack, pid, base = started_project(tmp_path, broker)
    async with make_client(broker.address, "pager", persistent=False) as client:
        for i in range(2500):
            event = Event(project_id=pid, source="svc", text=f"e{i}")
            await client.publish(str(topics.events("Admin", pid)), codec.encode(event), qos=1)
    await wait_for(lambda: len(read_all(stack, pid)) >= base + 2500, 60)
    async with session(broker.address, "Admin", 10) as sess:
        query = LogQuery(request_id=new_request_id(), reply_to=sess.client_id, last=5)
        page = await sess.request(topics.log_query("Admin", pid), query, LogPage, 10)
    assert [e.seq for e in page.entries] == list(range(base + 2496, base + 2501))
    stack.stop()


async def test_a_log_of_large_entries_is_read_in_pages_under_the_size_limit(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack, pid, base = started_project(tmp_path, broker)
    async with make_client(broker.address, "big-events", persistent=False) as client:
        for i in range(300):
            event = Event(project_id=pid, source="svc", text=f"{i:04d}" + "x" * 4000)
            await client.publish(str(topics.events("Admin", pid)), codec.encode(event), qos=1)
    await wait_for(lambda: len(read_all(stack, pid)) >= base + 300, 60)  # 1.2 MB in pages
    entries = read_all(stack, pid)
    assert [e["seq"] for e in entries] == list(range(1, base + 301))
    last: Any = stack.cli_json("log", pid, "--last", "100")
    assert last["entries"][-1]["seq"] == base + 300 and len(last["entries"]) >= 40
    stack.stop()

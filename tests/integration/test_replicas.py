"""Three managers on one broker and one MongoDB share the requests; losing one loses nothing."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from mqtt.requester import FIRST_RETRY, session
from protocol import topics
from protocol.messages import ListProjects, ProjectList, new_request_id
from tests.conftest import BrokerProcess, cli_env, make_repo
from tests.integration.conftest import UNLIMITED, Stack, start, write_local_sla
from tests.integration.test_faults import burst, sla_for, wait_for

pytestmark = pytest.mark.timeout(240)
CLIENTS, PER_CLIENT = 3, 40  # 120 starts: nx-27017 runs one command at a time
SLA = "mnist_sklearn_small.json"


def replicas(
    tmp_path: Path,
    broker: BrokerProcess,
    mongo_url: str,
    names: tuple[str, ...] = ("r1", "r2", "r3"),
) -> list[Stack]:
    database = "replicas_" + re.sub(r"\W", "_", tmp_path.name)[-30:]
    url = mongo_url.replace("/?", f"/{database}?", 1)
    repo = make_repo(tmp_path / "repos")
    write_local_sla(tmp_path / "slas", repo)
    stacks = []
    for name in names:
        root = tmp_path / name
        root.mkdir()
        env = cli_env(
            root,
            FLOPS_SLA_DIR=str(tmp_path / "slas"),
            FLOPS_STORE="mongodb",
            FLOPS_MONGO_URL=url,
            FLOPS_CLUSTER="true",
            FLOPS_IDENTIFIER=name,
            FLOPS_RECONCILE_INTERVAL="0.3",
            **UNLIMITED,
        )
        stack = Stack(root, env, per_test=True)
        stack.repo = repo  # type: ignore[attr-defined]
        stacks.append(stack)
    return stacks


async def test_three_managers_share_a_burst_and_survive_losing_one(
    tmp_path: Path, broker: BrokerProcess, mongo_url: str
) -> None:
    r1, r2, _ = stacks = replicas(tmp_path, broker, mongo_url)
    for stack in stacks:
        start(stack, broker)
    answered: list[tuple[str, str]] = []
    clients = asyncio.create_task(
        burst(broker, sla_for(r1), answered, 120, clients=CLIENTS, per_client=PER_CLIENT)
    )
    await wait_for(lambda: len(answered) >= 30)
    assert r2.stop(signal.SIGKILL) == -signal.SIGKILL
    await asyncio.sleep(1)
    start(r2, broker)
    await clients

    projects: Any = []

    def all_started() -> bool:
        projects[:] = r1.cli_json("projects")["projects"]
        return all(p["state"] == "IMAGES_READY" for p in projects)

    await wait_for(all_started, 90)
    by_request = {p["request_id"]: p for p in projects}
    assert len(answered) == CLIENTS * PER_CLIENT == len(projects)  # each handled once
    assert all(by_request[rid]["id"] == pid for rid, pid in answered)
    assert {p["host"] for p in projects} == {"r1", "r2", "r3"}  # the load was shared
    some = next(p for p in projects if p["host"] == "r3")
    log: Any = r1.cli_json("log", some["id"])  # asked through the broker, r3 answers
    seqs = [e["seq"] for e in log["entries"]]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3
    for stack in stacks:
        assert stack.stop() == 0


def _all_gone(broker: BrokerProcess, prefix: str) -> bool:
    """Whether the broker saw every connection of the clients ``prefix…`` close."""
    log = (broker.state_dir / "mosquitto.log").read_text()
    seen = set(re.findall(rf" as ({re.escape(prefix)}\S*) \(", log))
    return bool(seen) and all(f"Client {cid} closed its connection" in log for cid in seen)


async def test_a_dead_replica_gets_no_more_requests(tmp_path: Path, mongo_url: str) -> None:
    """Once the broker saw a replica's connection die, every request reaches a live one.

    Measured: each request's answer time. Proved: none of them needed the client's first
    resend (after 1 s), so none went to the dead replica's queue. The broker logs its
    connections here (off in production), so the test knows when it saw the death.
    """
    broker = BrokerProcess(tmp_path / "broker", extra=("connection_messages true",)).start()
    try:
        await _requests_after_a_replica_died(tmp_path, broker, mongo_url)
    finally:
        broker.stop()


async def _requests_after_a_replica_died(
    tmp_path: Path, broker: BrokerProcess, mongo_url: str
) -> None:
    r1, r2, r3 = replicas(tmp_path, broker, mongo_url)
    for stack in (r1, r2, r3):
        start(stack, broker)
    assert r2.stop(signal.SIGKILL) == -signal.SIGKILL
    await wait_for(lambda: _all_gone(broker, "r2"), 30)
    resends: list[int] = []
    took: list[float] = []
    async with session(broker.address, "Admin", 30) as sess:
        sess.on_retry = resends.append
        for _ in range(30):  # shared round robin: every third would go to r2's queue
            began = time.monotonic()
            request = ListProjects(request_id=new_request_id(), reply_to=sess.client_id)
            topic = topics.request("Admin", topics.Op.LIST_PROJECTS)
            await sess.request(topic, request, ProjectList, 30)
            took.append(time.monotonic() - began)
    print(
        f"after a replica's death: {len(took)} requests answered in "
        f"{min(took) * 1000:.1f} / {statistics.median(took) * 1000:.1f} / "
        f"{max(took) * 1000:.1f} ms (min / median / max), {len(resends)} resends"
    )
    assert resends == [], f"{len(resends)} requests waited for a resend ({FIRST_RETRY:g} s)"
    for stack in (r1, r3):
        assert stack.stop() == 0


async def test_whichever_replica_answers_a_stop_or_delete_the_host_stops_the_services(
    tmp_path: Path, broker: BrokerProcess, mongo_url: str
) -> None:
    """Requests are shared, so another replica often answers; the host reconciles."""
    stacks = replicas(tmp_path, broker, mongo_url, ("r1", "r2"))
    for stack in stacks:
        start(stack, broker)
    r1 = stacks[0]
    made = [r1.cli_json("project", "--project-sla-file-name", SLA, "--no-follow") for _ in range(6)]
    ids = [str(p["project"]["id"]) for p in made]  # type: ignore[index]

    def building() -> bool:
        listed: Any = r1.cli_json("projects")["projects"]
        return len(listed) == 6 and all(p["state"] == "IMAGES_READY" for p in listed)

    await wait_for(building, 60)
    listed: Any = r1.cli_json("projects")["projects"]
    hosts = {str(p["id"]): str(p["host"]) for p in listed}
    assert set(hosts.values()) == {"r1", "r2"}
    for n, pid in enumerate(ids):
        if n % 2:  # shifts which replica answers next (mosquitto hands shared messages round
            r1.cli("projects")  # robin), so some operations reach a replica that is not the host
        assert r1.cli("stop" if n < 3 else "delete", pid, "--yes").returncode == 0

    def reconciled() -> bool:
        for stack in stacks:
            host = stack.env["FLOPS_IDENTIFIER"]
            for pid in ids[3:]:  # deleted: the host's observer and its log are gone
                if hosts[pid] == host and pid in _hosted_observers(stack):
                    return False
        return True

    await wait_for(reconciled, 30)
    logs = "".join((stack.root / "stack.out").read_text() for stack in stacks)
    assert "elsewhere" in logs  # at least one host stopped what the other replica was asked
    for pid in ids[:3]:  # stopped: the log stays readable and says so
        log: Any = r1.cli_json("log", pid)
        assert log["state"] == "STOPPED"
    for stack in stacks:
        assert stack.stop() == 0


def _hosted_observers(stack: Stack) -> set[str]:
    db = stack.root / "data" / "flops" / "observer.db"
    with sqlite3.connect(db) as conn:
        return {str(r[0]) for r in conn.execute("SELECT project_id FROM observers")}

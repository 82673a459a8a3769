"""A fuzz run of 10,000 generated payloads against the running manager and observer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from manager.handlers import validate_sla
from mqtt.link import make_client
from protocol import codec, topics
from protocol.messages import CreateProject
from slas import bundled_dir
from tests.conftest import BrokerProcess
from tests.integration.conftest import Stack
from tests.strategies import payloads

pytestmark = pytest.mark.timeout(300)
CASES = 10_000
USER = "Fuzz"


def valid_request(stack: Stack) -> dict[str, Any]:
    sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla.update(customerID=USER, ml_repo_url=f"file://{stack.repo}")  # type: ignore[attr-defined]
    req = CreateProject(request_id="fuzz-valid-0", reply_to="fuzzer", sla=sla)
    return dict(json.loads(codec.encode(req)))


def generate(stack: Stack) -> list[tuple[str, bytes]]:
    targets = [str(topics.request(USER, op)) for op in topics.Op] + [
        str(topics.events(USER, "f" * 24)),
        str(topics.log_query(USER, "f" * 24)),
        str(topics.heartbeat(USER, "f" * 24)),
    ]
    cases: list[tuple[str, bytes]] = []

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.sampled_from(targets), payloads(valid_request(stack)))
    def collect(target: str, payload: bytes) -> None:
        cases.append((target, payload))

    collect()
    return cases


def expected_projects(cases: list[tuple[str, bytes]]) -> int:
    """How many projects the valid create requests among the cases must make."""
    create = str(topics.request(USER, topics.Op.CREATE_PROJECT))
    ids = set()
    for target, payload in cases:
        if target != create:
            continue
        try:
            req = codec.decode(CreateProject, payload)
            validate_sla(USER, req)
        except Exception:  # noqa: S112 - invalid is the common case
            continue
        ids.add(req.request_id)
    return len(ids)


async def test_ten_thousand_hostile_payloads_leave_the_manager_alive_and_no_stray_records(
    stack: Stack, mosquitto: BrokerProcess
) -> None:
    cases = generate(stack)
    assert len(cases) >= CASES
    expected = expected_projects(cases)
    started = time.monotonic()
    async with make_client(mosquitto.address, "fuzzer", persistent=False) as client:
        for target, payload in cases:
            await client.publish(target, payload, qos=1)
    print(
        f"published {len(cases)} payloads in {time.monotonic() - started:.1f}s; "
        f"{expected} valid create requests"
    )
    deadline = time.monotonic() + 120
    while True:
        listed = stack.cli("projects", "--user", USER, "-o", "json", "--timeout", "30")
        assert listed.returncode == 0, listed.stderr  # the manager still answers
        count = len(json.loads(listed.stdout)["projects"])
        if count >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert stack.proc is not None and stack.proc.poll() is None
    assert count == expected  # valid requests made their project once; nothing else was stored
    log = stack.cli("log", "f" * 24, "--user", USER)
    assert log.returncode == 1 and "no log" in log.stderr  # nothing stored for unknown projects

"""Hostile requests, restarts and concurrency against the running stack."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from mqtt.link import make_client
from protocol import codec, topics
from protocol.events import Event
from protocol.messages import Reply
from tests.conftest import BrokerProcess
from tests.integration.conftest import Stack, write_local_sla

pytestmark = pytest.mark.timeout(90)


async def ask_raw(broker: BrokerProcess, user: str, payload: bytes) -> Reply | None:
    """Publish raw bytes on the create-project topic; return the answer, if any comes."""
    async with make_client(broker.address, "raw-client", persistent=False) as client:
        await client.subscribe(str(topics.reply(user, "raw-client")), qos=1)
        await client.publish(str(topics.request(user, topics.Op.CREATE_PROJECT)), payload, qos=1)
        try:
            async with asyncio.timeout(3):
                async for message in client.messages:
                    return codec.decode(Reply, message.payload)
        except TimeoutError:
            return None
    return None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (
            b'{"v": 1, "request_id": "hostile-001", "reply_to": "raw-client", "sla": {"x": 1}}',
            "invalid_sla",
        ),
        (
            b'{"request_id": "hostile-002", "reply_to": "raw-client", "sla": {}, "evil": 1}',
            "bad_schema",
        ),
        (
            b'{"v": 9, "request_id": "hostile-003", "reply_to": "raw-client", "sla": {}}',
            "bad_version",
        ),
    ],
)
async def test_malformed_requests_get_a_structured_error_and_create_nothing(
    stack: Stack, mosquitto: BrokerProcess, payload: bytes, code: str
) -> None:
    reply = await ask_raw(mosquitto, "Mallory", payload)
    assert reply is not None and not reply.ok and reply.error is not None
    assert reply.error.code == code


async def test_garbage_is_survived(stack: Stack, mosquitto: BrokerProcess) -> None:
    for junk in (b"\xff\xfe", b"[" * 10_000, b"x" * 300_000, b"null"):
        assert await ask_raw(mosquitto, "Mallory", junk) is None
    assert stack.proc is not None and stack.proc.poll() is None
    listed: Any = stack.cli_json("projects", "--user", "Mallory")
    assert listed["projects"] == []


def test_concurrent_first_requests_of_a_user_make_one_observatory(
    stack: Stack, tmp_path: Path
) -> None:
    sla = write_local_sla(tmp_path, stack.repo, customerID="Bob")  # type: ignore[attr-defined]

    async def start_all() -> list[int]:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from cli.main import flops_entry; flops_entry()",
                "project",
                "--project-sla-file-name",
                str(sla),
                "--no-follow",
                env=stack.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for _ in range(4)
        ]
        return [await p.wait() for p in procs]

    assert asyncio.run(start_all()) == [0, 0, 0, 0]
    apps: Any = stack.cli_json("apps", "--user", "Bob")
    names = [a["name"] for a in apps["apps"]]
    assert names.count("observatory") == 1 and len(names) == 5


async def test_events_sent_while_the_stack_is_down_are_not_lost(
    stack: Stack, mosquitto: BrokerProcess
) -> None:
    started: Any = stack.cli_json("project", "--project-sla-file-name", "mnist_sklearn_small")
    pid, base = started["project"]["id"], len(started["log"])
    assert stack.stop() == 0
    async with make_client(mosquitto.address, "late-service", persistent=False) as client:
        for i in range(20):
            event = Event(project_id=pid, source="test-service", text=f"while down {i}")
            await client.publish(str(topics.events("Admin", pid)), codec.encode(event), qos=1)
    stack.start(
        "--broker", "external", "--broker-host", "127.0.0.1", "--broker-port", str(mosquitto.port)
    )
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        log: Any = stack.cli_json("log", pid)
        texts = [e["text"] for e in log["entries"]]
        if len(texts) >= base + 20 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert texts[base:] == [f"while down {i}" for i in range(20)]
    assert [e["seq"] for e in log["entries"]] == list(range(1, base + 21))
    shown: Any = stack.cli_json("status", pid)
    statuses = {s["kind"]: s["instances"][0]["status"] for s in shown["services"]}
    assert statuses == {"observer": "RUNNING", "builder": "COMPLETED"}

"""The protocol as a client written from docs/protocol.md alone sees it: raw JSON over MQTT.

No FLOps message class is used to build what is sent or to read what comes back; only the
topic strings and JSON objects the document describes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from mqtt.link import make_client
from protocol.states import ProjectState
from slas import bundled_dir
from tests.conftest import BrokerProcess, run_cli
from tests.integration.conftest import Stack

pytestmark = pytest.mark.timeout(90)
BASE = "flops/v1/users/{user}"


async def ask(
    broker: BrokerProcess, topic: str, message: dict[str, Any], user: str = "Admin"
) -> dict[str, Any] | None:
    """Publish ``message`` (``reply_to`` filled in) on ``topic``; the JSON answer, if any."""
    me = "doc-" + uuid.uuid4().hex[:12]
    async with make_client(broker.address, me, persistent=False) as client:
        await client.subscribe(f"{BASE.format(user=user)}/replies/{me}", qos=1)
        payload = json.dumps({"reply_to": me, **message}).encode()
        await client.publish(topic.format(user=user), payload, qos=1)
        try:
            async with asyncio.timeout(5):
                async for answer in client.messages:
                    found: dict[str, Any] = json.loads(bytes(answer.payload))
                    return found
        except TimeoutError:
            return None
    return None


def rid() -> str:
    return uuid.uuid4().hex


def building_project(stack: Stack) -> str:
    """A project of the seed SLA, started and followed until it rests (wherever that is)."""
    started: Any = stack.cli_json("project", "--project-sla-file-name", "mnist_sklearn_small")
    assert ProjectState(started["state"]).resting, started["state"]
    return str(started["project"]["id"])


def query_topic(project_id: str) -> str:
    return BASE + f"/projects/{project_id}/log/query"


async def test_an_unknown_operation_is_answered_with_its_error(
    stack: Stack, mosquitto: BrokerProcess
) -> None:
    reply = await ask(mosquitto, BASE + "/requests/frobnicate", {"v": 1, "request_id": rid()})
    assert reply is not None and reply["ok"] is False
    assert reply["error"]["code"] == "unknown_operation"
    assert "create_project" in reply["error"]["message"]


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"limit": 10_001}, "limit"),
        ({"from_seq": 2, "last": 1}, "exclude each other"),
        ({"from_seq": 0}, "from_seq"),
        ({}, "v: Field required"),  # the query without "v"
    ],
)
async def test_an_invalid_log_query_is_answered_with_its_error(
    stack: Stack, mosquitto: BrokerProcess, query: dict[str, Any], detail: str
) -> None:
    project_id = building_project(stack)
    message = ({"v": 1} if query else {}) | {"request_id": rid()} | query
    reply = await ask(mosquitto, query_topic(project_id), message)
    assert reply is not None and reply["ok"] is False
    assert reply["error"]["code"] == "bad_schema"
    assert any(detail in line for line in reply["error"]["details"]), reply


async def test_a_request_without_v_is_refused_and_creates_nothing(
    stack: Stack, mosquitto: BrokerProcess
) -> None:
    sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla["customerID"] = "Victor"
    message = {"request_id": rid(), "sla": sla, "sla_name": "x.json"}
    reply = await ask(mosquitto, BASE + "/requests/create_project", message, user="Victor")
    assert reply is not None and reply["ok"] is False
    assert reply["error"]["code"] == "bad_schema"
    assert reply["error"]["details"][0].startswith("v: Field required")
    listed: Any = stack.cli_json("projects", "--user", "Victor")
    assert listed["projects"] == []


async def test_log_pages_say_more_only_when_there_is_more_and_always_the_state(
    stack: Stack, mosquitto: BrokerProcess
) -> None:
    project_id = building_project(stack)
    state = stack.cli_json("status", project_id)["state"]

    async def page(**fields: int) -> dict[str, Any]:
        reply = await ask(
            mosquitto, query_topic(project_id), {"v": 1, "request_id": rid()} | fields
        )
        assert reply is not None and reply["ok"] is True, reply
        result: dict[str, Any] = reply["result"]
        assert result["state"] == state
        return result

    n = len((await page(limit=1000))["entries"])  # the project rests: its log is complete
    assert n >= 3
    full = await page(limit=n)  # exactly full: nothing follows
    assert [e["seq"] for e in full["entries"]] == list(range(1, n + 1))
    assert (full["more"], full["next_seq"]) == (False, n + 1)
    first = await page(limit=n - 1)
    assert (first["more"], first["next_seq"]) == (True, n)
    rest = await page(from_seq=n, limit=1)
    assert ([e["seq"] for e in rest["entries"]], rest["more"]) == ([n], False)
    assert (await page(last=2))["entries"][0]["seq"] == n - 1


def follow(stack: Stack, project_id: str) -> subprocess.CompletedProcess[str]:
    """``flops log ID --follow`` as a user runs it; it must end by itself."""
    return run_cli(["log", project_id, "--follow"], stack.env, timeout=30)


def test_following_a_stopped_project_prints_its_log_and_ends(stack: Stack) -> None:
    project_id = building_project(stack)
    assert stack.cli("stop", project_id, "--yes").returncode == 0
    done = follow(stack, project_id)
    assert done.returncode == 0, done.stderr
    assert "New Builder service" in done.stdout and "stopped" in done.stdout.lower()


def test_following_a_failed_project_prints_its_log_and_ends(stack: Stack, tmp_path: Path) -> None:
    sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla["ml_repo_url"] = f"file://{tmp_path}/nobody/nothing"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(sla))
    started = stack.cli("project", "--project-sla-file-name", str(path), "--output", "json")
    assert started.returncode == 1  # it failed
    project_id = json.loads(started.stdout)["project"]["id"]
    done = follow(stack, project_id)
    assert done.returncode == 0, done.stderr
    assert "Builder failed" in done.stdout

"""Proof that a kind of service and a stage are data: both are defined in this test alone.

A toy service kind (a config model and a coroutine) and a toy stage (a table entry) run a
project on the real stack: a real mosquitto, the stack in this process with the local
runtime, the real CLI in a subprocess following the project's log until it rests.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from manager.pipeline import Pipeline, Stage, StageInput, Want
from protocol.events import Event, Facts
from services.context import ServiceContext
from services.kinds import KINDS, ServiceKind
from tests.conftest import ROOT, BrokerProcess
from tests.stack.conftest import stack_in_process

pytestmark = pytest.mark.timeout(60)


class ToyConfig(BaseModel):
    """What the toy service is told."""

    model_config = ConfigDict(extra="forbid")
    greeting: str


async def run_toy(ctx: ServiceContext[ToyConfig]) -> None:
    """Say hello with data that ends the toy stage, then end (a one-shot service)."""
    await ctx.beat()
    done = Facts(type="toy_done", values={"greeted": ctx.config.greeting, "rounds": 3})
    text = f"Toy says hello to {ctx.config.greeting}"
    await ctx.emit(
        Event(project_id=ctx.spec.project_id, source=ctx.spec.name, text=text, data=done)
    )


TOY: ServiceKind[ToyConfig] = ServiceKind(
    "toy", "toy", ToyConfig, run_toy, one_shot=True, label="Toy"
)


def toy_services(given: StageInput) -> list[Want]:
    return [Want(TOY, ToyConfig(greeting=given.user))]


TOY_PIPELINE = Pipeline("toy", {"toy": Stage("toy", toy_services, ends_on="toy_done")})


@pytest.fixture
async def toy_stack(
    tmp_path: Path, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, str]]:
    monkeypatch.setitem(KINDS, TOY.name, TOY)
    async with stack_in_process(
        tmp_path, mosquitto, monkeypatch, {}, pipeline=TOY_PIPELINE
    ) as running:
        yield running.env


async def flops(env: dict[str, str], *args: str) -> tuple[int, Any]:
    code = "from cli.main import flops_entry; flops_entry()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, "-o", "json",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None and out, err.decode()
    return proc.returncode, json.loads(out)


async def test_a_project_runs_through_a_stage_and_a_kind_defined_in_a_test(
    toy_stack: dict[str, str],
) -> None:
    code, started = await flops(
        toy_stack, "project", "--project-sla-file-name", "mnist_sklearn_small"
    )
    assert code == 0 and started["state"] == "COMPLETED", started
    log = started["log"]
    texts = [entry["text"] for entry in log]
    assert texts == [
        "Project Observer started",
        "New Toy service created & deployed",
        "Toy says hello to Admin",
        "Project completed: every stage is done",
    ]
    assert log[2]["data"] == {
        "v": 1,
        "type": "toy_done",
        "values": {"greeted": "Admin", "rounds": 3},
    }
    assert log[3]["state"] == "COMPLETED"
    project_id = started["project"]["id"]
    for _ in range(50):  # the toy's end is recorded once its coroutine returned
        _, shown = await flops(toy_stack, "status", project_id)
        statuses = {s["kind"]: s["instances"][0]["status"] for s in shown["services"]}
        if statuses.get("toy") == "COMPLETED":
            break
    assert shown["state"] == "COMPLETED"
    assert statuses == {"observer": "RUNNING", "toy": "COMPLETED"}

"""The stack on the MongoDB backend: the seed command and a restart, against a wire server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BrokerProcess
from tests.integration.conftest import make_stack, start

pytestmark = pytest.mark.timeout(120)


def test_the_seed_command_runs_on_mongodb_and_state_survives_a_restart(
    tmp_path: Path,
    broker: BrokerProcess,
    mongo_url: str,
) -> None:
    database = re.sub(r"\W", "_", tmp_path.name)[-40:]
    url = mongo_url.replace("/?", f"/{database}?", 1)
    stack = make_stack(tmp_path, broker, FLOPS_STORE="mongodb", FLOPS_MONGO_URL=url)
    start(stack, broker)
    done = stack.cli(
        "addon", "flops", "p", "--project-sla-file-name", "mnist_sklearn_small.json", prog="oak"
    )
    assert done.returncode == 0, done.stderr
    assert "Start building" in done.stdout
    assert stack.stop() == 0
    start(stack, broker)
    listed: Any = stack.cli_json("projects")
    assert [p["state"] for p in listed["projects"]] == ["IMAGES_READY"]
    services: Any = stack.cli_json("services")
    assert sorted(s["kind"] for s in services["services"]) == ["builder", "observer"]
    assert stack.stop() == 0

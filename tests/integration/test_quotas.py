"""Per-user quotas: live projects and starts per minute, refused with the limit named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BrokerProcess
from tests.integration.conftest import Stack, make_stack, start

pytestmark = pytest.mark.timeout(120)


def start_project(stack: Stack) -> Any:
    done = stack.cli(
        "project", "--project-sla-file-name", "mnist_sklearn_small", "--no-follow", "-o", "json"
    )
    return done.returncode, json.loads(done.stdout)


def total(stack: Stack) -> int:
    listed: Any = stack.cli_json("projects")
    return int(listed["total"])


def test_a_user_over_a_quota_is_refused_with_the_limit_named(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack = make_stack(
        tmp_path, broker, FLOPS_MAX_LIVE_PROJECTS="2", FLOPS_MAX_STARTS_PER_MINUTE="3"
    )
    start(stack, broker)
    made = []
    for _ in range(2):
        code, answer = start_project(stack)
        assert code == 0, answer
        made.append(answer["project"]["id"])
    code, refused = start_project(stack)
    assert code == 1
    assert refused["error"]["code"] == "quota_exceeded"
    assert "2 live projects" in refused["error"]["message"]
    assert "max_live_projects = 2" in refused["error"]["message"]
    assert total(stack) == 2  # nothing made for the refused request
    # A stopped project is not live: a third start fits, and is the third in this minute.
    assert stack.cli("stop", made[0], "--yes").returncode == 0
    code, answer = start_project(stack)
    assert code == 0, answer
    assert stack.cli("stop", made[1], "--yes").returncode == 0
    code, refused = start_project(stack)
    assert code == 1
    assert refused["error"]["code"] == "quota_exceeded"
    assert "max_starts_per_minute = 3" in refused["error"]["message"]
    assert total(stack) == 3
    assert stack.stop() == 0

"""Stop and delete from the CLI, as a user does it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.timeout(90)


def start(stack: Stack) -> str:
    started: Any = stack.cli_json("project", "--project-sla-file-name", "mnist_sklearn_small")
    return str(started["project"]["id"])


def test_stop_needs_confirmation_then_undeploys_and_keeps_the_log(stack: Stack) -> None:
    pid = start(stack)
    unconfirmed = stack.cli("stop", pid)  # no terminal, no --yes
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    stopped: Any = stack.cli_json("stop", pid, "--yes")
    assert stopped["state"] == "STOPPED"
    kinds = {s["kind"]: s["instances"][0]["status"] for s in stopped["services"]}
    assert kinds == {"observer": "RUNNING", "builder": "UNDEPLOYED"}
    log: Any = stack.cli_json("log", pid)
    assert log["entries"][-1]["text"] == "Project stopped by Admin; its services are undeployed"
    assert log["state"] == "STOPPED"
    follow = stack.cli("log", pid, "--follow", "--until-rest")
    assert follow.returncode == 3
    again = stack.cli("stop", pid, "--yes")
    assert again.returncode == 0


def test_delete_removes_the_project_and_its_log(stack: Stack) -> None:
    keep, gone = start(stack), start(stack)
    deleted: Any = stack.cli_json("delete", gone, "--yes")
    assert deleted["removed_apps"] == [gone] and len(deleted["removed_services"]) == 2
    status = stack.cli("status", gone)
    assert status.returncode == 1 and f"no project {gone}" in status.stderr
    log = stack.cli("log", gone)
    assert log.returncode == 1 and "no log" in log.stderr
    apps: Any = stack.cli_json("apps")
    names = [a["name"] for a in apps["apps"]]
    assert "observatory" in names and gone not in [a["id"] for a in apps["apps"]]
    assert stack.cli("status", keep).returncode == 0

"""The seed's command end to end: real mosquitto, real stack process, CLI as a subprocess."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from broker.server import free_port
from tests.conftest import BrokerProcess, head_of
from tests.integration.conftest import Stack

pytestmark = pytest.mark.timeout(90)
SEED = ["addon", "flops", "p", "--project-sla-file-name", "mnist_sklearn_small.json"]


def log_texts(stdout: str) -> list[str]:
    return [
        m.group(1)
        for m in re.finditer(r"^\s+\d+\s+\d\d:\d\d:\d\d\.\d{3}\s+\S+\s+(.*)$", stdout, re.M)
    ]


def test_the_seed_command_starts_a_project_as_the_documentation_shows(stack: Stack) -> None:
    done = stack.cli(*SEED, prog="oak")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    sla_path = Path(stack.env["FLOPS_SLA_DIR"]) / "mnist_sklearn_small.json"
    assert f"Success: 'Init new FLOps project for SLA '{sla_path}'" in out
    assert "╭" in out and "╰" in out
    assert re.search(r"│ observatory\s+│ \(\d+\)\s+│ [0-9a-f]{24} │", out)
    assert re.search(r"│ proj[0-9a-f]{12}\s+│ \(\d+\)\s+│ [0-9a-f]{24} │", out)
    assert re.search(r"│ observ[0-9a-f]{12}\s+│ [0-9a-f]{24} │ 0 RUNNING\s+│ observatory\s+│", out)
    head = head_of(stack.repo)  # type: ignore[attr-defined]
    texts = log_texts(out)
    assert texts[:3] == [
        "Project Observer started",
        "New Builder service created & deployed",
        "Project is BUILDING: stage build",
    ]
    learner = f"localhost:5073/malyuk-a/flops_ml_repo_mnist_sklearn/learner:{head}"
    assert f"Start building {learner} image (This can take a while)" in texts
    assert texts[-1] == "Project is IMAGES_READY: stage images_ready"
    assert "is IMAGES_READY: its learner and aggregator images are built" in out


def test_json_output_and_the_query_commands_agree(stack: Stack) -> None:
    started: Any = stack.cli_json("project", "--project-sla-file-name", "mnist_sklearn_small")
    project = started["project"]
    assert started["state"] == "IMAGES_READY"
    seqs = [e["seq"] for e in started["log"]]
    assert seqs == list(range(1, len(seqs) + 1))
    ready = [e["data"] for e in started["log"] if e["data"] and e["data"]["type"] == "images_ready"]
    assert len(ready) == 1 and ready[0]["values"]["reused"] is True  # the first test built them
    pid = project["id"]
    assert project["name"] == next(a for a in project["apps"] if a["id"] == pid)["name"]

    listed: Any = stack.cli_json("projects")
    assert pid in [p["id"] for p in listed["projects"]]
    shown: Any = stack.cli_json("status", pid)
    assert shown["state"] == "IMAGES_READY"
    assert sorted(s["kind"] for s in shown["services"]) == ["builder", "observer"]
    builder = next(s for s in shown["services"] if s["kind"] == "builder")
    assert builder["app_id"] == pid and builder["instances"][0]["status"] == "COMPLETED"
    apps: Any = stack.cli_json("apps")
    assert [a["name"] for a in apps["apps"]].count("observatory") == 1
    services: Any = stack.cli_json("services")
    assert builder["id"] in [s["id"] for s in services["services"]]

    last: Any = stack.cli_json("log", pid, "--last", "1")
    assert [e["seq"] for e in last["entries"]] == [seqs[-1]]
    later: Any = stack.cli_json("log", pid, "--from-seq", "2")
    assert [e["seq"] for e in later["entries"]] == seqs[1:]
    assert later["state"] == "IMAGES_READY"


def test_the_oak_tables_show_on_their_own(stack: Stack) -> None:
    apps = stack.cli("a", "s", prog="oak")
    services = stack.cli("s", "s", prog="oak")
    assert apps.returncode == services.returncode == 0
    assert "Application ID" in apps.stdout and "observatory" in apps.stdout
    assert "Instances" in services.stdout and "RUNNING" in services.stdout


def test_no_follow_returns_at_once_and_show_sends_nothing(stack: Stack) -> None:
    before: Any = stack.cli_json("projects")
    shown = stack.cli("project", "--project-sla-file-name", "mnist_sklearn_small", "--show")
    assert shown.returncode == 0 and '"customerID": "Admin"' in shown.stdout
    assert stack.cli_json("projects") == before
    quick = stack.cli("project", "--project-sla-file-name", "mnist_sklearn_small", "--no-follow")
    assert quick.returncode == 0 and "Success:" in quick.stdout
    assert "Live log" not in quick.stdout


def test_an_unreachable_github_repo_fails_the_project_clearly(stack: Stack, tmp_path: Path) -> None:
    sla = json.loads(Path(stack.env["FLOPS_SLA_DIR"], "mnist_sklearn_small.json").read_text())
    sla["ml_repo_url"] = "file:///nonexistent/owner/repo"
    path = tmp_path / "gone.json"
    path.write_text(json.dumps(sla))
    done = stack.cli("project", "--project-sla-file-name", str(path))
    assert done.returncode == 1
    assert "cannot reach file:///nonexistent/owner/repo" in done.stdout
    assert "Builder failed. Terminating this FLOps Project." in done.stdout
    pid = re.search(r"Project ([0-9a-f]{24}) FAILED", done.stdout)
    assert pid is not None
    shown: Any = stack.cli_json("status", pid.group(1))
    assert shown["state"] == "FAILED" and "cannot reach" in shown["state_reason"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"training_configuration": {"training_rounds": 0}},
            "training_configuration.training_rounds",
        ),
        (
            {"ml_repo_url": "https://example.com/a/b"},
            "ml_repo_url: must be a GitHub repository URL",
        ),
        ({"customerId": "Admin"}, "customerId: unknown field; did you mean 'customerID'?"),
    ],
)
def test_a_bad_sla_exits_2_naming_file_and_field_and_sends_nothing(
    stack: Stack, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    sla = json.loads(Path(stack.env["FLOPS_SLA_DIR"], "mnist_sklearn_small.json").read_text())
    sla.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(sla))
    before: Any = stack.cli_json("projects")
    done = stack.cli("project", "--project-sla-file-name", str(path))
    assert done.returncode == 2
    assert str(path) in done.stderr and message in done.stderr
    assert stack.cli_json("projects") == before


def test_invalid_json_and_unknown_names_exit_2(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    done = stack.cli("project", "--project-sla-file-name", str(path))
    assert done.returncode == 2 and "invalid JSON" in done.stderr
    done = stack.cli("project", "--project-sla-file-name", "nope")
    assert done.returncode == 2 and "no SLA named 'nope.json'" in done.stderr


def test_no_broker_is_a_clear_error(stack: Stack) -> None:
    port = free_port()
    done = stack.cli("projects", "--broker", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"cannot reach the MQTT broker at mqtt://127.0.0.1:{port}" in done.stderr
    assert "flops up" in done.stderr


def test_no_manager_answering_is_a_clear_error(stack: Stack, tmp_path: Path) -> None:
    lonely = BrokerProcess(tmp_path / "lonely")
    lonely.start()
    try:
        done = stack.cli(
            "project",
            "--project-sla-file-name",
            "mnist_sklearn_small",
            "--broker",
            f"127.0.0.1:{lonely.port}",
            "--timeout",
            "1",
        )
    finally:
        lonely.stop()
    assert done.returncode == 1
    assert (
        f"no answer from the FLOps manager within 1s via the broker at mqtt://127.0.0.1:{lonely.port}"
        in done.stderr
    )
    assert "flops up" in done.stderr


def test_json_errors_are_one_document(stack: Stack, tmp_path: Path) -> None:
    done = stack.cli("project", "--project-sla-file-name", "nope", "--output", "json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["success"] is False

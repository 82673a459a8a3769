"""``runtime = "process"``: each observer and builder is an OS process (`flops service run`).

A real mosquitto, a real stack process and the CLI as a subprocess, as a user runs them.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from stack.discovery import pid_alive
from tests.conftest import BrokerProcess, head_of, wait_until
from tests.integration.conftest import Stack, make_stack, start
from tests.integration.test_project_start import SEED, log_texts

pytestmark = pytest.mark.timeout(120)


def service_processes(stack: Stack) -> dict[str, tuple[int, str]]:
    """The stack's service children: kind -> (pid, service name), read from /proc."""
    assert stack.proc is not None
    found: dict[str, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent != stack.proc.pid or cmdline[1:5] != [b"-m", b"cli", b"service", b"run"]:
            continue
        env = dict(v.decode().split("=", 1) for v in environ if b"=" in v)
        found[env["FLOPS_SERVICE_KIND"]] = (int(entry.name), env["FLOPS_SERVICE_NAME"])
    return found


def process_stack(tmp_path: Path, broker: BrokerProcess, **env: str) -> Stack:
    stack = make_stack(tmp_path, broker, FLOPS_RUNTIME="process", **env)
    start(stack, broker)
    return stack


def start_seed(stack: Stack) -> tuple[str, list[str]]:
    """Start the seed project through `oak addon flops p`; its id and followed log."""
    done = stack.cli(*SEED, prog="oak")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = json.loads(stack.cli("projects", "-o", "json").stdout)
    return str(listed["projects"][-1]["id"]), log_texts(done.stdout)


def entries(stack: Stack, project_id: str) -> list[dict[str, Any]]:
    log: Any = stack.cli_json("log", project_id)
    return list(log["entries"])


def test_a_project_runs_its_observer_and_builder_as_processes_and_follows_their_log(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack = process_stack(tmp_path, broker)
    project_id, texts = start_seed(stack)
    head = head_of(stack.repo)  # type: ignore[attr-defined]
    assert texts[0] == "Project Observer started"
    # The builder, a process of its own, may report before the manager's lines.
    assert "New Builder service created & deployed" in texts
    learner = f"localhost:5073/malyuk-a/flops_ml_repo_mnist_sklearn/learner:{head}"
    assert f"Start building {learner} image (This can take a while)" in texts
    assert texts[-1] == "Project is IMAGES_READY: stage images_ready"
    children = service_processes(stack)
    assert stack.proc is not None
    assert list(children) == ["observer"]  # the builder's process ended with its job
    shown: Any = stack.cli_json("status", project_id)
    builder = next(s for s in shown["services"] if s["kind"] == "builder")
    # Ended by itself, or stopped by the end of its stage a moment before it exited.
    assert builder["instances"][0]["status"] in ("COMPLETED", "UNDEPLOYED")
    # It ran as a process in a data dir of its own, and built into the node's data dir.
    assert (stack.data_dir / "services" / builder["name"] / "service.log").exists()
    assert list((stack.data_dir / "images").glob("sha256-*/manifest.json"))
    # The log lives in the observer process's data dir; the stack hosts no observer.
    assert not (stack.data_dir / "observer.db").exists()
    observer_db = stack.data_dir / "services" / children["observer"][1] / "observer.db"
    assert observer_db.exists()
    assert shown["state"] == "IMAGES_READY"

    assert stack.stop(signal.SIGTERM) == 0
    assert not any(pid_alive(pid) for pid, _ in children.values())


def test_a_stack_restart_restores_the_observer_process_with_its_log_intact(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack = process_stack(tmp_path, broker)
    project_id, _ = start_seed(stack)
    before = entries(stack, project_id)
    first = service_processes(stack)
    assert stack.stop(signal.SIGTERM) == 0
    assert not any(pid_alive(pid) for pid, _ in first.values())

    start(stack, broker)
    again = wait_until(lambda: len(found := service_processes(stack)) == 1 and found)
    assert again["observer"][1] == first["observer"][1]
    assert again["observer"][0] != first["observer"][0]
    after = entries(stack, project_id)
    assert after == before  # nothing lost, no second "started", no second build
    shown: Any = stack.cli_json("status", project_id)
    assert shown["state"] == "IMAGES_READY"
    assert stack.stop() == 0


def test_an_observer_killed_with_sigkill_fails_its_project_by_its_exit_status(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack = process_stack(tmp_path, broker)
    project_id, _ = start_seed(stack)
    children = service_processes(stack)
    observer_pid, observer = children["observer"]
    os.kill(observer_pid, signal.SIGKILL)

    def failed() -> Any:
        shown: Any = stack.cli_json("status", project_id)
        return shown if shown["state"] == "FAILED" else None

    shown = wait_until(failed)
    assert shown["state_reason"] == f"service {observer} failed"
    # The observer is started again, so the log stays readable, with the failure in it.
    restarted = wait_until(lambda: service_processes(stack).get("observer"))
    assert restarted[0] != observer_pid
    # The restarted observer gets the failure from its persistent session, just after it
    # connected: the log may answer before that, so wait for the entry.
    failure = f"Project failed: service {observer} failed"
    texts = wait_until(
        lambda: (
            [t for t in [e["text"] for e in entries(stack, project_id)][-1:] if t == failure]
            or None
        ),
        timeout=15,
    )
    assert texts == [failure]
    assert stack.stop() == 0


def test_a_builder_that_fails_ends_its_process_with_a_failed_status(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    stack = process_stack(tmp_path, broker)
    sla_path = Path(stack.env["FLOPS_SLA_DIR"]) / "mnist_sklearn_small.json"
    sla = json.loads(sla_path.read_text())
    sla["ml_repo_url"] = f"file://{tmp_path}/nowhere/repo"
    sla_path.write_text(json.dumps(sla))
    done = stack.cli("project", "--project-sla-file-name", "mnist_sklearn_small")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot reach" in done.stdout and "Builder failed. Terminating" in done.stdout
    project_id = json.loads(stack.cli("projects", "-o", "json").stdout)["projects"][0]["id"]

    def builder_failed() -> bool:
        shown: Any = stack.cli_json("status", project_id)
        builder = next(s for s in shown["services"] if s["kind"] == "builder")
        return bool(builder["instances"][0]["status"] == "FAILED")

    wait_until(builder_failed)
    assert "builder" not in service_processes(stack)
    assert stack.stop() == 0

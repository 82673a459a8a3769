"""`flops up` / `flops down` as a user runs them: embedded broker, state on disk."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BrokerProcess, cli_env, make_repo, run_cli
from tests.integration.conftest import make_stack, start, write_local_sla

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("broker", ["auto", "amqtt"])
def test_up_runs_the_seed_command_and_down_stops_it(tmp_path: Path, broker: str) -> None:
    repo = make_repo(tmp_path / "repos")
    write_local_sla(tmp_path / "slas", repo)
    env = cli_env(tmp_path, FLOPS_SLA_DIR=str(tmp_path / "slas"))
    up = run_cli(["up", "--detach", "--broker", broker], env)
    assert up.returncode == 0, up.stderr + up.stdout
    expected_kind = "amqtt" if broker == "amqtt" else "mosquitto"
    assert f"({expected_kind})" in up.stdout
    try:
        again = run_cli(["up", "--detach"], env)
        assert again.returncode == 0 and "already running" in again.stdout
        done = run_cli(
            ["addon", "flops", "p", "--project-sla-file-name", "mnist_sklearn_small.json"],
            env,
            prog="oak",
        )
        assert done.returncode == 0, done.stderr
        assert "Start building" in done.stdout
        data = Path(env["XDG_DATA_HOME"]) / "flops"
        assert (data / "manager.db").exists() and (data / "observer.db").exists()
    finally:
        down = run_cli(["down"], env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not (Path(env["XDG_DATA_HOME"]) / "flops" / "stack.json").exists()
    assert run_cli(["down"], env).stdout.strip() == "No FLOps stack is running."
    # state survives: a new stack still knows the project
    up = run_cli(["up", "--detach", "--broker", broker], env)
    try:
        listed = run_cli(["projects", "--output", "json"], env)
        assert len(json.loads(listed.stdout)["projects"]) == 1
    finally:
        run_cli(["down"], env)


def _card(env: dict[str, str]) -> dict[str, Any]:
    card: dict[str, Any] = json.loads(
        (Path(env["XDG_DATA_HOME"]) / "flops" / "stack.json").read_text()
    )
    return card


def test_a_stack_killed_with_kill_9_comes_back_on_the_same_port(tmp_path: Path) -> None:
    """Clients keep the address they knew: the leftover broker is ended, TIME-WAIT ignored."""
    env = cli_env(tmp_path)
    assert run_cli(["up", "--detach"], env).returncode == 0
    try:
        before = _card(env)
        # A client connected while the broker dies: the broker's end sits in TIME-WAIT.
        held = socket.create_connection(("127.0.0.1", before["broker_port"]))
        os.kill(before["pid"], signal.SIGKILL)
        up = run_cli(["up", "--detach"], env)
        held.close()
        assert up.returncode == 0, up.stderr
        after = _card(env)
        assert after["pid"] != before["pid"]
        assert after["broker_port"] == before["broker_port"]
        assert after["broker_pid"] != before["broker_pid"]
        assert run_cli(["projects"], env).returncode == 0
    finally:
        assert run_cli(["down"], env).returncode == 0


def test_the_stack_starts_its_broker_again_when_it_dies(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert run_cli(["up", "--detach"], env).returncode == 0
    try:
        before = _card(env)
        os.kill(before["broker_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _card(env)["broker_pid"] == before["broker_pid"]:  # rewritten once it runs again
            assert time.monotonic() < deadline, "the broker was not started again"
            time.sleep(0.05)
        assert _card(env)["broker_port"] == before["broker_port"]
        listed = run_cli(["projects"], env)
        assert listed.returncode == 0, listed.stderr
    finally:
        down = run_cli(["down"], env)
    assert down.returncode == 0 and "stopped" in down.stdout


def test_down_stops_a_stack_whose_broker_is_gone(tmp_path: Path) -> None:
    """No broker to drain through: the stack still stops at once, and cleanly."""
    broker = BrokerProcess(tmp_path / "broker").start()
    stack = make_stack(tmp_path, broker)
    start(stack, broker)
    broker.stop()
    started = time.monotonic()
    down = run_cli(["down"], stack.env)
    assert down.returncode == 0, down.stderr
    assert stack.stop() == 0, (tmp_path / "stack.out").read_text()
    print(f"stopped {time.monotonic() - started:.2f} s after `flops down` without a broker")

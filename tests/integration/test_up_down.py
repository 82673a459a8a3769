"""`flops up` / `flops down` as a user runs them: embedded broker, state on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli_env, make_repo, run_cli
from tests.integration.conftest import write_local_sla

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

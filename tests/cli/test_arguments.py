"""Bad command-line input is refused before anything is sent, with exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from broker.server import free_port
from tests.conftest import cli_env, run_cli

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "args",
    [
        ["status", "nonexistent"],
        ["log", "XYZ"],
        ["stop", "6B04BD30E85FF35C80D2A21B", "--yes"],
        ["delete", "6b04bd30e85ff35c80d2a21", "--yes"],
    ],
)
def test_a_malformed_project_id_exits_2_naming_it(tmp_path: Path, args: list[str]) -> None:
    done = run_cli(args, cli_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert f"{args[1]!r} is not a project id" in done.stderr
    assert "Traceback" not in done.stderr


def _unusable(tmp_path: Path, kind: str) -> Path:
    """A data dir FLOps cannot use: a file, below a file, not writable, a name too long."""
    (tmp_path / "file").write_text("not a folder")
    if kind == "read-only":
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
        return folder
    return {
        "a file": tmp_path / "file",
        "below a file": tmp_path / "file" / "flops",
        "a name too long": tmp_path / ("d" * 300),
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "a file",
        "below a file",
        "a name too long",
        pytest.param(
            "read-only",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere"),
        ),
    ],
)
@pytest.mark.parametrize(
    "args",
    [["up"], ["up", "--detach"], ["user", "add", "bob", "--password-stdin"], ["user", "list"]],
)
def test_an_unusable_data_dir_is_one_line_and_exit_2(
    tmp_path: Path, kind: str, args: list[str]
) -> None:
    data_dir = _unusable(tmp_path, kind)
    done = run_cli(args, cli_env(tmp_path, FLOPS_DATA_DIR=str(data_dir)), stdin="password123")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: data dir ") and "is not usable" in line


@pytest.mark.parametrize(
    "name",
    ["a" * 300, "a" * 300 + ".json", "/tmp/" + "b" * 300 + "/sla.json", "c" * 5000],
)
def test_an_sla_name_too_long_is_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    for show in ([], ["--show"]):
        done = run_cli(["project", "--project-sla-file-name", name, *show], cli_env(tmp_path))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("Error: SLA ") and "too long" in line


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["project", "--project-sla-file-name", "no-such-sla"], "invalid_sla", 2),
        (["projects", "--broker", "127.0.0.1:{port}", "--timeout", "2"], "no_broker", 1),
        (["up"], "bad_config", 2),  # the data dir below is a file
    ],
)
def test_json_errors_use_the_protocols_vocabulary(
    tmp_path: Path, args: list[str], code: str, exit_code: int
) -> None:
    """One vocabulary of codes on the wire and in --output json, never a class name."""
    (tmp_path / "file").write_text("")
    env = cli_env(tmp_path, FLOPS_DATA_DIR=str(tmp_path / "file"))
    args = [arg.format(port=free_port()) for arg in args]
    done = run_cli([*args, "--output", "json"], env)
    assert done.returncode == exit_code, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == code, error

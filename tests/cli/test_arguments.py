"""Bad command-line input is refused before anything is sent, with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

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

"""`flops secure init` as a user runs it: what it says, its exit codes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli_env, run_cli


def secure_init(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    args = [
        "secure",
        "init",
        "--dir",
        str(tmp_path / "secrets"),
        "--cli-dir",
        str(tmp_path / "cli"),
    ]
    done = run_cli([*args, *extra], cli_env(tmp_path))
    return done.returncode, done.stdout, done.stderr


def test_init_says_what_it_created_then_that_it_changed_nothing(tmp_path: Path) -> None:
    code, out, _ = secure_init(tmp_path, "--broker-host", "mosquitto")
    assert code == 0
    assert "created  " in out
    assert out.splitlines()[-1] == "9 of 9 files created or changed."
    code, out, _ = secure_init(tmp_path, "--broker-host", "mosquitto")
    assert code == 0
    assert out.splitlines()[-1] == "0 of 9 files created or changed."
    assert "created  " not in out


def test_init_refuses_bad_input_with_exit_code_2(tmp_path: Path) -> None:
    code, _, err = secure_init(tmp_path, "--broker-owner", "mosquitto")
    assert (code, "UID:GID" in err) == (2, True)
    assert secure_init(tmp_path)[0] == 0
    code, _, err = secure_init(tmp_path, "--broker-host", "elsewhere.example")
    assert code == 2
    assert "does not name elsewhere.example" in err


def test_init_into_a_folder_it_cannot_create_says_so_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    done = run_cli(
        ["secure", "init", "--dir", str(tmp_path / "file" / "secrets")], cli_env(tmp_path)
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: cannot write the secure files")
    assert "Traceback" not in done.stderr

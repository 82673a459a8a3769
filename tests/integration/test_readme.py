"""The README as a new user reads it: its first line, run as written, prints what it shows.

The line runs from the checkout through the wrappers in ``bin/`` (as from a fresh clone,
whose ``.venv`` they set up), with a home of its own holding the local SLA the README
describes; its output must match the README's "What you see" up to ids, times, port and
commit. Every hint names a command that works as printed.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from broker.server import free_port
from slas import bundled_dir
from tests.conftest import ROOT, make_repo

pytestmark = pytest.mark.timeout(180)
README = ROOT / "README.md"


def first_line() -> str:
    """The first command of the README's first code block."""
    return README.read_text().split("```bash\n", 1)[1].splitlines()[0]


def what_you_see() -> tuple[str, str]:
    """The command and the output the README's "What you see" shows."""
    block = README.read_text().split("## What you see", 1)[1].split("```\n", 2)[1]
    command, _, output = block.partition("\n")
    return command.removeprefix("$ "), output


def normal(text: str) -> str:
    """Text without what changes between runs: ids, hashes, times, pids, ports."""
    text = re.sub(r"\b[0-9a-f]{40}\b", "<commit>", text)
    text = re.sub(r"\b[0-9a-f]{24}\b", "<id>", text)
    text = re.sub(r"\b(proj|observ|builder)[0-9a-f]{12}\b", r"\1<hash>", text)
    text = re.sub(r"\b\d\d:\d\d:\d\d\.\d{3}\b", "<time>", text)
    text = re.sub(r"\bpid \d+", "pid <n>", text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)


def user_env(home: Path, *, path: str = "") -> dict[str, str]:
    """A new user's environment: a home of their own, nothing of FLOps' set."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("FLOPS_", "XDG_"))}
    return keep | {"HOME": str(home), "PATH": path or os.environ["PATH"]}


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"{{ {command}; }} 2>&1"],  # as a terminal shows both streams
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_first_line_prints_what_the_readme_shows(tmp_path: Path) -> None:
    command, shown = what_you_see()
    assert command == first_line()
    home = tmp_path / "home"
    repo = make_repo(home / "repos")
    sla = (bundled_dir() / "mnist_sklearn_small.json").read_text()
    sla = sla.replace("https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn", f"file://{repo}")
    folder = home / "oak_cli" / "addons" / "flops" / "projects"
    folder.mkdir(parents=True)
    (folder / "mnist_sklearn_small.json").write_text(sla)
    env = user_env(home)
    try:
        done = shell(command, env)
        assert done.returncode == 0, done.stdout
        assert normal(done.stdout) == normal(shown)
        # The hint it ends with names a command that works as printed.
        hint = done.stdout.strip().splitlines()[-1].split("Follow it with: ", 1)[1]
        assert hint.startswith("bin/oak addon flops log ")
        followed = shell(hint.removesuffix(" --follow"), env)
        assert followed.returncode == 0 and "Start building" in followed.stdout
    finally:
        assert shell("bin/flops down", env).returncode == 0


def test_with_bin_on_path_the_names_of_the_readme_work_and_the_hints_use_them(
    tmp_path: Path,
) -> None:
    refused = f"projects --broker 127.0.0.1:{free_port()} --timeout 2"
    done = shell(f"bin/flops {refused}", user_env(tmp_path))  # a fresh clone: bin/ only
    assert done.returncode == 1 and "start the stack with `bin/flops up`" in done.stdout
    env = user_env(tmp_path, path=f"{ROOT / 'bin'}:{os.environ['PATH']}")
    done = shell(f"flops {refused}", env)
    assert done.returncode == 1 and "start the stack with `flops up`" in done.stdout
    assert shell("oak addon flops slas", env).returncode == 0

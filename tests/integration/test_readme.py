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
from tests.conftest import ROOT

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


# uv's own progress differs with the state of its cache (downloads or not); so do numbers.
_VOLATILE = ("the packages of the", "still working")


def normal(text: str) -> list[str]:
    """The lines that must match, sorted (concurrent learners' lines may interleave).

    Without what changes between runs: ids, hashes, times, pids, ports, numbers, paths of
    the home, and uv's progress lines.
    """
    lines = []
    for raw in text.splitlines():
        if any(v in raw for v in _VOLATILE):
            continue
        line = raw
        line = re.sub(r"(/[\w.-]+)+/\.local/share/flops", "<data>", line)
        line = re.sub(r"(/[\w.-]+)+/(nodedata|slas)/bundled/", r"<checkout>/\2/bundled/", line)
        line = re.sub(r"\b[0-9a-f]{40}\b", "<commit>", line)
        line = re.sub(r"\b[0-9a-f]{24}\b", "<id>", line)
        line = re.sub(r"\b([a-z]*?)[0-9a-f]{12,16}\b", r"\1<hash>", line)
        line = re.sub(r"\b\d\d:\d\d:\d\d\.\d{3}\b", "<time>", line)
        line = re.sub(r"\d+(\.\d+)?", "<n>", line)
        lines.append(" ".join(line.split()))
    return sorted(lines)


def user_env(home: Path, *, path: str = "") -> dict[str, str]:
    """A new user's environment: a home of their own, nothing of FLOps' set.

    uv's package cache stays the machine's (a new user's first run downloads the wheels).
    """
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("FLOPS_", "XDG_"))}
    cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    return keep | {"HOME": str(home), "PATH": path or os.environ["PATH"], "UV_CACHE_DIR": cache}


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"{{ {command}; }} 2>&1"],  # as a terminal shows both streams
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip


def test_the_first_line_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """The seed command, verbatim, from a stack to a served model; its output as shown."""
    command, shown = what_you_see()
    assert command == first_line()
    env = user_env(tmp_path / "home")
    try:
        done = shell(command, env)
        assert done.returncode == 0, done.stdout
        assert normal(done.stdout) == normal(shown)
        project_id = re.findall(r"Project ([0-9a-f]{24}) COMPLETED", done.stdout)[-1]
        status = shell(f"bin/flops status {project_id} -o json", env)
        assert status.returncode == 0 and '"inference_url": "http://127.0.0.1:' in status.stdout
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

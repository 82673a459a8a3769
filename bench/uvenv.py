"""A real environment built with uv, laid out as the image builder lays out images.

The builder (``images/``) is another package's job; this is the few steps that
bench.serving and the tests that run the scoring server in its own environment need:
a venv, the requirements installed by uv, and ``flops_env`` made importable by a ``.pth``
file that points at a copy of it (nothing else of ours is importable there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from uv import find_uv_bin

import flops_env


def _run(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{done.stderr}")


def build_env(dest: Path, requirements: list[str]) -> Path:
    """A venv in ``dest`` with ``requirements`` and ``flops_env``; its Python."""
    uv = find_uv_bin()
    venv = dest / "venv"
    _run(uv, "venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--quiet", "--python", str(python), *requirements)
    ours = dest / "flops"
    shutil.copytree(Path(flops_env.__file__).parent, ours / "flops_env",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    version = sysconfig.get_python_version()
    site = venv / "lib" / f"python{version}" / "site-packages"
    (site / "flops.pth").write_text(f"{ours}\n")
    return python

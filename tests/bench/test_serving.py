"""bench.serving in its short mode, served from this venv: it runs and prints its figures.

A smoke test only: nothing about speed is asserted (docs/trained-model.md holds figures).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.timeout(120)
def test_the_short_run_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.serving", "--short", "--python", sys.executable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    figures = [line for line in lines if line.startswith("inference ")]
    assert len(figures) == 6
    assert all(" ms" in line or " s" in line for line in figures)

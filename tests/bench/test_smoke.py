"""The benchmark suite in its short mode: it runs and reports every scenario.

A smoke test only: nothing about speed is asserted (CI machines vary; docs/performance.md
holds the measured figures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCENARIOS = {
    "training",
    "cli",
    "start latency",
    "event to follower",
    "observer ingest",
    "log replay",
    "start throughput",
    "scale",
    "build",
    "inference",
}


@pytest.mark.timeout(180)
def test_the_short_suite_reports_every_scenario_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--short", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "short"
    assert result["errors"] == {}
    assert set(result["scenarios"]) == SCENARIOS
    for name, rows in result["scenarios"].items():
        assert rows, name
        for row in rows:
            assert isinstance(row["value"], int | float), (name, row)
            assert row["value"] == row["value"], (name, row)  # not NaN
    assert result["machine"]["nproc"] >= 1
    assert "bench" in result["command"]

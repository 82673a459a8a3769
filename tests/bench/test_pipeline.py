"""bench.pipeline: its phases read from recorded logs of the seed command, and the scenario
itself in its short mode (the cold run, 50 requests; about 15 s).

``pipeline_logs.json`` holds the logs a cold and a warm run of the seed command followed
(``flops project --output json``), with the times around the CLI. Nothing about speed is
asserted on a live run (docs/performance.md holds the figures).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.pipeline import READY, Run, phases, what_was_built
from tests.conftest import ROOT

RECORDED = json.loads((Path(__file__).parent / "pipeline_logs.json").read_text())


def recorded(name: str) -> Run:
    return Run(**RECORDED[name])


def test_the_phases_of_a_cold_run_follow_the_stages_from_the_log_s_timestamps() -> None:
    got = phases(recorded("cold"))
    assert list(got) == [
        "command to accepted (CLI start, request, project made)",
        "build: accepted to images ready",
        "train: images ready to aggregator started (workers up)",
        "train: aggregator started to learners joined",
        "train: round 1/3",
        "train: round 2/3",
        "train: round 3/3",
        "train: last round to artifact saved",
        "model image: artifact to image built",
        "serve: image built to Inference service ready",
        READY,
        "command exits (followed to COMPLETED)",
    ]
    # the recorded run: the command started at 0, the observer's first line at 0.515 s,
    # `FLOps images ready` at 2.355 s, `Inference service ready` at 11.943 s
    assert got["command to accepted (CLI start, request, project made)"] == pytest.approx(
        0.515, abs=1e-3
    )
    assert got["build: accepted to images ready"] == pytest.approx(2.355 - 0.515, abs=1e-3)
    assert got["train: round 1/3"] == pytest.approx(0.031, abs=1e-3)  # the round's own seconds
    assert got[READY] == pytest.approx(11.943, abs=1e-3)
    assert all(seconds >= 0 for seconds in got.values())


def test_a_warm_run_reuses_the_actor_images_and_shares_the_trained_model_s() -> None:
    assert what_was_built(recorded("cold").log) == (
        "learner and aggregator images built, trained-model image built"
    )
    assert what_was_built(recorded("warm").log) == (
        "learner and aggregator images reused, trained-model image shared"
    )
    assert phases(recorded("warm"))["build: accepted to images ready"] < 0.1


def test_a_log_without_a_stage_s_event_is_named() -> None:
    run = recorded("cold")
    cut = [e for e in run.log if (e["data"] or {}).get("type") != "inference_ready"]
    with pytest.raises(RuntimeError, match="no 'inference_ready' event in the project's log"):
        phases(Run(run.started, run.finished, cut))


def test_another_training_mode_is_one_train_phase() -> None:
    run = recorded("cold")
    hierarchical = [e for e in run.log if (e["data"] or {}).get("type") != "round"]
    got = phases(Run(run.started, run.finished, hierarchical))
    assert "train: images ready to artifact saved" in got
    assert not any(name.startswith("train: round") for name in got)


@pytest.mark.timeout(180)
def test_the_short_scenario_carries_the_seed_command_to_a_served_model() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--short"],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = [line for line in done.stdout.splitlines() if line.startswith("pipeline ")]
    names = " ".join(figures)
    assert f"cold: {READY}" in names and "cold: train: round 3/3" in names
    assert "p50 POST /invocations to the project's service" in names
    assert not any("warm:" in line for line in figures)  # --short: the cold run only

"""``python -m bench.training``: the training stage of the base case, and a bare run beside it.

The base case is ``mnist_sklearn_small``: 2 learners x 3 rounds, FedAvg, over a mosquitto
started here, each actor with its worker child process running the test ML repository
(LogisticRegression on the digits resampled to 28x28; tests/mlrepo). Beside it, in the
same run, the bare baseline: the same ModelManager class fitting the same partitions
for 3 rounds with the same averaging, in this one process, without MQTT or workers.
Target (issue 13): federated <= 2 x bare + 3 s. The bare run runs in a fresh Python
process, so that it pays its imports as a worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import ROOT, Broker, Mode, Row, Stack
from services.aggregator.service import AggregatorConfig, run_aggregator
from services.learner.service import LearnerConfig, run_learner
from services.training.bus import BrokerTarget
from services.training.fedavg import weighted_mean
from services.training.messages import RoundData
from services.training.settings import RoundPlan, TrainingSettings
from services.training.worker import Worker
from slas import bundled_dir
from tests.mlrepo import (
    PROJECT,
    REPO,
    USER,
    Digits,
    Events,
    artifact_plan,
    data_spec,
    worker_spec,
)
from tests.mlrepo import write_digits as make_digits

ROUNDS = 3


def federated(root: Path, broker: Broker, digits: Digits) -> dict[str, float]:
    """One base-case training; its wall time and its parts from the event times."""
    target, events = BrokerTarget(broker.address), Events()
    settings = TrainingSettings(heartbeat_interval=0.5, learner_timeout=5.0)
    plan = RoundPlan(rounds=ROUNDS, min_available=2, min_fit=2, min_evaluate=2)
    config = AggregatorConfig(
        user=USER,
        project_id=PROJECT,
        name="aggr",
        plan=plan,
        worker=worker_spec(),
        checkpoint_dir=root / "checkpoint",
        artifact=artifact_plan(root / "models"),
        settings=settings,
    )
    learners = [
        LearnerConfig(
            user=USER,
            project_id=PROJECT,
            name=f"flearner{i}",
            worker=worker_spec(),
            data=data_spec(digits, i),
            settings=settings,
        )
        for i in range(2)
    ]

    async def run() -> None:
        async with asyncio.TaskGroup() as tasks:
            for learner in learners:
                tasks.create_task(run_learner(learner, target, events))
            await run_aggregator(config, target, events)

    started = time.time()
    asyncio.run(run())
    wall = time.time() - started
    at = {e.text.split(" ")[0]: e.ts - started for e, _ in reversed(events.items)}
    rounds = [d for d in events.data() if isinstance(d, RoundData)]
    return {
        "wall (until every actor and worker exited)": wall,
        "until the final line (Aggregator tasks completed)": at["Aggregator"],
        "aggregator ready (worker start, initial parameters)": at["Start"],
        "all learners joined (worker start, imports, data)": max(
            e.ts - started for e, _ in events.items if "joined" in e.text
        ),
        "rounds (sum of round seconds)": sum(r.seconds for r in rounds),
        "after the last round (model saved, final lines)": at["Aggregator"]
        - (max(e.ts for e, d in events.items if isinstance(d, RoundData)) - started),
        "accuracy (last round)": rounds[-1].accuracy,
    }


def worker_parts() -> dict[str, float]:
    """A worker's start alone: spawn to ready, of which importing model_manager (sklearn)."""

    async def start() -> dict[str, float]:
        async with Worker.start(worker_spec(), TrainingSettings()) as worker:
            ready = worker.ready
            if ready is None:
                raise RuntimeError("the worker did not report ready")
            return {
                "worker spawn to ready": ready.start_seconds,
                "of which import model_manager": ready.import_seconds,
            }

    return asyncio.run(start())


def bare_process(digits: Digits) -> dict[str, float]:
    """``bare`` in a fresh Python (so its imports are as cold as a worker's)."""
    code = (
        "import json, sys; from pathlib import Path; from bench import training; "
        "print(json.dumps(training.bare(training.load_digits(Path(sys.argv[1])))))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(digits.data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def load_digits(data_dir: Path) -> Digits:
    """The partitions ``make_digits`` wrote (the held-out part is not needed here)."""
    names = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.glob("data/*/*.npz"))
    return Digits(data_dir, names, np.zeros((0, 784)), np.zeros(0))


def bare(digits: Digits) -> dict[str, float]:
    """The same ModelManager on the same partitions, 3 FedAvg rounds in this process."""
    started = time.perf_counter()
    sys.path[:0] = [str(REPO)]
    module = importlib.import_module("model_manager")
    imported = time.perf_counter()
    managers = []
    for index in range(2):
        os.environ.update(data_spec(digits, index).env())
        manager = module.ModelManager()
        manager.set_model_data()
        managers.append(manager)
    loaded = time.perf_counter()
    parameters: list[Any] = managers[0].get_model_parameters()
    accuracy = 0.0
    for _ in range(ROUNDS):
        fits = []
        for manager in managers:
            manager.set_model_parameters([np.copy(p) for p in parameters])
            with contextlib.redirect_stdout(io.StringIO()):
                examples = manager.fit_model()
            fits.append(([np.asarray(p) for p in manager.get_model_parameters()], examples))
        parameters = weighted_mean(fits)
        results = []
        for manager in managers:
            manager.set_model_parameters(parameters)
            results.append(manager.evaluate_model())
        accuracy = sum(r[1] * r[2] for r in results) / sum(r[2] for r in results)
    done = time.perf_counter()
    return {
        "wall": done - started,
        "import model_manager": imported - started,
        "data": loaded - imported,
        "rounds": done - loaded,
        "accuracy (last round)": accuracy,
    }


def show(title: str, figures: dict[str, float]) -> None:
    """Print one block of figures."""
    print(title)
    for name, value in figures.items():
        unit = "" if name.startswith("accuracy") else " s"
        print(f"  {name:55} {value:8.3f}{unit}")


SCENARIO = "training"
FLOPS = [sys.executable, "-m", "cli"]


def _ts(entries: list[dict[str, Any]], test: Any) -> float:  # noqa: ANN401 - a predicate
    return float(next(e["ts"] for e in entries if test(e)))


def on_stack(stack: Stack) -> dict[str, float]:
    """The seed SLA (no post-training steps) on ``stack``: images reused, the train stage timed.

    The bundled example on the node's mock data (``flops mock_data mnist_multi.json``); the
    parts are read from the log's timestamps.
    """
    sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla.update(customerID=stack.sla["customerID"], post_training_steps=[])
    (Path(stack.env["FLOPS_SLA_DIR"]) / "train.json").write_text(json.dumps(sla))

    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [*FLOPS, *args, "--output", "json"], env=stack.env, capture_output=True,
            timeout=300, check=False,
        )  # fmt: skip
        doc: dict[str, Any] = json.loads(done.stdout or "{}")
        return doc

    prepared = subprocess.run(
        [*FLOPS, "mock_data", "--mock-sla-file-name", "mnist_multi.json"],
        env=stack.env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    if prepared.returncode != 0:
        raise RuntimeError(f"mock_data failed: {prepared.stderr.decode()[-500:]}")
    cli("project", "--project-sla-file-name", "train.json")  # builds the images once
    started = time.time()
    doc = cli("project", "--project-sla-file-name", "train.json")
    wall = time.time() - started
    if doc.get("state") != "COMPLETED":
        raise RuntimeError(f"the seed training ended {doc.get('state')}")
    log = doc["log"]
    entered = _ts(log, lambda e: e["text"].startswith("Start handling FL training"))
    begun = _ts(log, lambda e: e["text"].startswith("Start Aggregator activities"))
    joined = max(e["ts"] for e in log if " joined " in e["text"])
    rounds = [e for e in log if e["data"] and e["data"]["type"] == "round"]
    trained = _ts(log, lambda e: e["data"] is not None and e["data"]["type"] == "trained")
    return {
        "wall (seed command, images reused, followed to COMPLETED)": wall,
        "train stage (entered to trained event)": trained - entered,
        "aggregator ready (deploy, worker start, initial parameters)": begun - entered,
        "all learners joined (worker start, imports, data)": joined - entered,
        "rounds (sum of round seconds)": sum(r["data"]["seconds"] for r in rounds),
        "after the last round (artifact saved, final lines)": trained - rounds[-1]["ts"],
        "accuracy (best round)": max(r["data"]["accuracy"] for r in rounds),
    }


def run(stack: Stack, mode: Mode) -> list[Row]:
    """The ``bin/bench`` scenario: the train stage on ``stack`` beside the bare run."""
    del mode  # one training either way: it is a few seconds
    fed = on_stack(stack)
    with tempfile.TemporaryDirectory(prefix="flops-bench-train-") as tmp:
        base = bare_process(make_digits(Path(tmp), 2))
    stage = fed["train stage (entered to trained event)"]
    budget = 2 * base["wall"] + 3
    note = "seed SLA on the bundled example and mock data; baseline: tests/mlrepo's repository"
    rows = [
        Row(SCENARIO, "train stage, 2 learners x 3 rounds", round(stage, 3), "s",
            round(base["wall"], 3), f"<= 2 x bare + 3 s = {budget:.2f} s", stage <= budget, note),
    ]  # fmt: skip
    rows += [
        Row(SCENARIO, name, round(value, 3), "" if "accuracy" in name else "s")
        for name, value in fed.items()
        if not name.startswith("train stage")
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run both, print the figures and the target check."""
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__)
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        broker = Broker(root / "mosquitto").start()
        try:
            digits = make_digits(root / "data", 2)
            parts = worker_parts()
            fed = federated(root / "run", broker, digits)
        finally:
            broker.stop()
            base = bare_process(digits)
    show("worker (one, alone)", parts)
    show(f"federated: 2 learners x {ROUNDS} rounds over MQTT, one worker per actor", fed)
    show("bare: the same ModelManager, same data, one fresh process", base)
    budget = 2 * base["wall"] + 3
    final = fed["until the final line (Aggregator tasks completed)"]
    verdict = "met" if final <= budget else "MISSED"
    print(f"target federated <= 2 x bare + 3 s = {budget:.2f} s: {final:.2f} s, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

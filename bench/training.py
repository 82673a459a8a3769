"""The training stage of the base case, beside a bare run and Flower (``python -m bench.training``).

The base case is the seed SLA ``mnist_sklearn_small`` (2 learners x 3 rounds, FedAvg) on the
bundled example repository and the node's mock data (``flops mock_data mnist_multi.json``),
on a stack with every stage (the ``training`` scenario of ``python -m bench``):

- federated: the seed command run twice; the first builds the images and trains (its train
  stage is reported as the first training on new images: their bytecode is written then),
  the second reuses them and is the figure. Its parts come from the log's timestamps:
  actors deployed, workers ready (3 at once: spawn, imports, data), each round, and the
  model saved; then one worker alone in the same image gives a worker's start and import.
- bare: the same ModelManager on the same learners' slices (read from the log), the same
  FedAvg rounds, in one fresh process of the learner image's own Python (``bench.alone``).
- Flower: the same ModelManager, slices, rounds and evaluation under Flower 1.41's
  deployment runtime (``bench.flower``), in an environment built here; run twice like ours
  (the first writes its bytecode), the second is the figure. Not in ``--short``.

Targets (issue 13, 2 cores): train stage <= 2 x bare + 3 s, and faster than Flower.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import flower
from bench.harness import ROOT, Broker, Mode, Row, Stack
from bench.report import table
from services.learner.service import DataSpec
from services.training.settings import TrainingSettings
from services.training.worker import Worker, WorkerSpec, worker_env
from slas import bundled_dir

SCENARIO = "training"
FLOPS = [sys.executable, "-m", "cli"]
ALONE = ROOT / "bench" / "alone.py"
Entry = dict[str, Any]


def _at(log: list[Entry], test: Callable[[Entry], bool]) -> float:
    return float(next(e["ts"] for e in log if test(e)))


def _data(entry: Entry, kind: str) -> bool:
    return bool(entry["data"]) and entry["data"]["type"] == kind


def stage_parts(log: list[Entry]) -> dict[str, float]:
    """The train stage of one project's log and its parts, in seconds."""
    entered = _at(log, lambda e: e["text"].startswith("Start handling FL training"))
    deployed = max(e["ts"] for e in log if e["text"].endswith("service created & deployed"))
    begun = _at(log, lambda e: e["text"].startswith("Start Aggregator activities"))
    joined = max(e["ts"] for e in log if " joined " in e["text"])
    rounds = [e for e in log if _data(e, "round")]
    trained = _at(log, lambda e: _data(e, "trained"))
    figures = {
        "train stage": trained - entered,
        "actors deployed (3 services started by the runtime)": deployed - entered,
        "workers ready, 3 at once (spawn, imports, data, initial parameters)": max(begun, joined)
        - entered,
    }
    for entry in rounds:
        figures[f"round {entry['data']['round']}"] = float(entry["data"]["seconds"])
    figures["after the last round (best model saved, final lines)"] = trained - rounds[-1]["ts"]
    figures["accuracy (last round)"] = float(rounds[-1]["data"]["accuracy"])
    return figures


class Seed:
    """What the stack's training used: the learner image, the repository, each share."""

    def __init__(self, log: list[Entry]) -> None:
        ready = next(e["data"]["values"] for e in log if _data(e, "images_ready"))
        self.python = Path(ready["learner"]["python"])
        self.repo = Path(ready["repo_path"])
        manifest = json.loads((Path(ready["learner"]["path"]) / "manifest.json").read_text())
        self.requirements: list[str] = list(manifest["requirements"])
        shares = sorted(
            (e["data"]["values"] for e in log if _data(e, "learner_data")),
            key=lambda v: str(v["learner"]),
        )
        self.shares = [
            DataSpec(dir=Path(ready["data_dir"]), tags=ready["data_tags"], slices=v["slices"]).env()
            for v in shares
        ]

    @property
    def spec(self) -> WorkerSpec:
        """A learner's worker, without its data."""
        return WorkerSpec(python=str(self.python), repo=self.repo)


def on_stack(stack: Stack) -> tuple[dict[str, float], dict[str, float], Seed]:
    """The seed SLA (no post-training) twice on ``stack``: the first and the timed training."""
    sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
    sla.update(customerID=stack.sla["customerID"], post_training_steps=[])
    (Path(stack.env["FLOPS_SLA_DIR"]) / "train.json").write_text(json.dumps(sla))

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*FLOPS, *args], env=stack.env, capture_output=True, timeout=300, check=False
        )

    prepared = run("mock_data", "--mock-sla-file-name", "mnist_multi.json")
    if prepared.returncode != 0:
        raise RuntimeError(f"mock_data failed: {prepared.stderr.decode()[-500:]}")
    logs = []
    for _ in range(2):
        done = run("project", "--project-sla-file-name", "train.json", "--output", "json")
        doc = json.loads(done.stdout or "{}")
        if doc.get("state") != "COMPLETED":
            raise RuntimeError(
                f"the seed training ended {doc.get('state')}: {done.stderr[-500:]!r}"
            )
        logs.append(doc["log"])
    return stage_parts(logs[0]), stage_parts(logs[1]), Seed(logs[1])


def one_worker(seed: Seed) -> dict[str, float]:
    """One learner worker alone in the image: spawn to ready, of which the import."""

    async def start() -> dict[str, float]:
        async with Worker.start(seed.spec, TrainingSettings()) as worker:
            if worker.ready is None:
                raise RuntimeError("the worker did not report ready")
            return {
                "one worker alone: spawn to ready": worker.ready.start_seconds,
                "of which import model_manager (scikit-learn)": worker.ready.import_seconds,
            }

    return asyncio.run(start())


def bare(seed: Seed, rounds: int) -> dict[str, float]:
    """``bench.alone`` in the learner image's Python, with a worker's environment."""
    done = subprocess.run(
        [str(seed.python), str(ALONE), str(seed.repo), json.dumps(seed.shares), str(rounds)],
        capture_output=True, text=True, check=False, env=worker_env(seed.spec), timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the bare run failed: {done.stderr[-1000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def under_flower(seed: Seed, rounds: int, root: Path) -> tuple[dict[str, float], ...]:
    """Flower's environment built, then the case run twice (the first writes bytecode)."""
    python = flower.build_env(root, seed.requirements)
    case = flower.Case(seed.repo, seed.shares, rounds)
    return tuple(flower.run(python, case, root / f"run{n}") for n in (1, 2))


def _rows(figures: dict[str, float], prefix: str = "", skip: tuple[str, ...] = ()) -> list[Row]:
    return [
        Row(SCENARIO, prefix + name, round(value, 3), "" if "accuracy" in name else "s")
        for name, value in figures.items()
        if name not in skip and not name.startswith("ClientApp processes")
    ]


def run(stack: Stack, mode: Mode) -> list[Row]:
    """The ``bin/bench`` scenario; Flower only in the full mode."""
    first, fed, seed = on_stack(stack)
    rounds = sum(name.startswith("round ") for name in fed)
    alone = one_worker(seed)
    base = bare(seed, rounds)
    stage, budget = fed["train stage"], 2 * base["wall"] + 3
    rows = [
        Row(SCENARIO, "train stage, 2 learners x 3 rounds (seed command, images reused)",
            round(stage, 3), "s", round(base["wall"], 3), f"<= 2 x bare + 3 s = {budget:.2f} s",
            stage <= budget, "baseline: the bare run below"),
        *_rows(fed, skip=("train stage",)),
        *_rows(alone),
        Row(SCENARIO, "first training on new images (bytecode written)",
            round(first["train stage"], 3), "s"),
        *_rows(base, "bare run (learner image's Python, one process): "),
    ]  # fmt: skip
    if mode.short:
        return rows
    with tempfile.TemporaryDirectory(prefix="flops-bench-flower-") as folder:
        first_flower, theirs = under_flower(seed, rounds, Path(folder))
    total = theirs["total (launch to the final round's metrics)"]
    rows += [
        Row(SCENARIO, "train stage vs Flower 1.41 (deployment runtime)", round(stage, 3), "s",
            round(total, 3), "< Flower", stage < total, "baseline: Flower's total below"),
        *_rows(theirs, "Flower: "),
        Row(SCENARIO, "Flower: ClientApp processes (one per message)",
            theirs["ClientApp processes started (Flower starts one per message)"], ""),
        Row(SCENARIO, "Flower: first run (bytecode written)",
            round(first_flower["total (launch to the final round's metrics)"], 3), "s"),
    ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """The scenario alone on a stack of its own; prints its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__)
    parser.add_argument("--short", action="store_true", help="without Flower")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flops-bench-train-") as folder:
        root = Path(folder)
        broker = Broker(root / "mosquitto").start()
        stack = Stack(root / "stack", broker, stages="all")
        started = time.perf_counter()
        try:
            stack.start()
            rows = run(stack, Mode(args.short))
        finally:
            stack.stop()
            broker.stop()
    print(table(rows))
    print(f"\n{len(rows)} figures in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

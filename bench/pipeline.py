"""``python -m bench.pipeline [--short]``: the README's seed command end to end, each phase timed.

A fresh mosquitto and stack (all stages) in a temporary data dir, as the other scenarios
start them (bench.harness); the mock data of the README (``flops mock_data
mnist_multi.json``); then the seed command, ``flops project --project-sla-file-name`` of the
bundled ``mnist_sklearn_small.json`` (its GitHub URL; the builder falls back to the bundled
example when GitHub is out of reach), followed to COMPLETED, twice:

- cold: no image exists in the data dir; uv's package cache is the machine's (warm once
  anything has built these packages; a note says so when uv downloaded);
- warm: a second project on the same stack: the learner's and aggregator's images exist,
  the trained-model image has a new name (its run id) and shares the first one's content.

The phases come from the project's log, whose timestamps the services set when they emit
(one machine, one clock): accepted (the observer's first line) → images ready → each
round → artifact saved (``trained``) → trained-model image built → ``Inference service
ready``. The two phases the user's libraries' imports dominate get same-run baselines
(``BASELINE_NOTES``): the actors' Pythons making the repository's ModelManager at once,
and the scoring server spawned alone. Then, against the warm project's inference service,
``POST /invocations`` of one digit beside the same body to a trivial endpoint of the same
server stack, started with the trained-model image's Python (bench.serving's
measurement). ``--short``: the cold run only, 50 requests.

Targets on 2 cores (issue 14): command to ``Inference service ready`` cold <= 30 s, warm <=
15 s; inference p50 <= 2x the bare round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import serving
from bench.build import seed_sla
from bench.harness import FLOPS, Broker, Mode, Row, Stack
from bench.report import table
from nodedata.datasets import load
from services.builder.facts import IMAGES_READY
from services.trmodel.child import child_environment
from services.trmodel.facts import INFERENCE_READY, MODEL_IMAGE_READY, TRAINED

SCENARIO = "pipeline"
TARGETS = {"cold": 30.0, "warm": 15.0}  # seconds from the command to `Inference service ready`
READY = "command to Inference service ready"
WORKERS = "train: images ready to aggregator started (workers up)"
SERVE = "serve: image built to Inference service ready"
AGGREGATOR_STARTED = "Start Aggregator activities"  # its worker gave the initial parameters
# Run with an actor's Python in the exported commit: what its worker has done by the time
# the aggregator starts (the user's ModelManager imported, one made, its parameters taken).
MANAGER = "import model_manager; model_manager.ModelManager().get_model_parameters()"
# uv installs no .pyc files; with this variable set (inherited by the stack and its
# children) none is written either, and every worker and server compiles its imports.
NO_BYTECODE = "; PYTHONDONTWRITEBYTECODE is set: each process compiles its imports"
BASELINE_NOTES = {
    WORKERS: "baseline: the aggregator's and each learner's Python importing and making the"
    " repository's ModelManager, all at once, fresh processes, no FLOps",
    SERVE: "baseline: python -m flops_env.serve of the same model alone, spawn to its ready line",
}
Entry = dict[str, Any]  # a log entry as `flops project --output json` prints it


@dataclass(frozen=True)
class Run:
    """One seed command: wall-clock times around the CLI and the log it followed."""

    started: float  # time.time() right before the CLI was started
    finished: float  # time.time() when it had exited
    log: list[Entry]


def data_type(entry: Entry) -> str | None:
    """The type tag of an entry's data, if it has data."""
    data = entry.get("data")
    return data.get("type") if isinstance(data, dict) else None


def first(log: list[Entry], kind: str) -> Entry:
    """The first entry whose data is of type ``kind``."""
    for entry in log:
        if data_type(entry) == kind:
            return entry
    raise RuntimeError(f"no {kind!r} event in the project's log")


def values(entry: Entry) -> dict[str, Any]:
    """The values of an entry's ``Facts`` data."""
    found: dict[str, Any] = entry["data"]["values"]
    return found


def phases(run: Run) -> dict[str, float]:
    """Seconds of each phase of ``run``, from the log's timestamps, in pipeline order."""
    log = run.log
    accepted = log[0]["ts"]  # seq 1: the observer's first line, written at the creation
    images = first(log, IMAGES_READY)["ts"]
    trained = first(log, TRAINED)["ts"]
    model = first(log, MODEL_IMAGE_READY)["ts"]
    ready = first(log, INFERENCE_READY)["ts"]
    rounds = [e for e in log if data_type(e) == "round"]  # RoundMetrics: classic FedAvg
    out = {
        "command to accepted (CLI start, request, project made)": accepted - run.started,
        "build: accepted to images ready": images - accepted,
    }
    started = [e["ts"] for e in log if e["text"].startswith(AGGREGATOR_STARTED)]
    joined = [e["ts"] for e in log if " joined (" in e["text"]]
    if started and joined and rounds:
        out[WORKERS] = started[0] - images
        out["train: aggregator started to learners joined"] = max(joined) - started[0]
        for r in rounds:
            out[f"train: round {r['data']['round']}/{len(rounds)}"] = r["data"]["seconds"]
        out["train: last round to artifact saved"] = trained - rounds[-1]["ts"]
    else:  # another training mode: the stage as one phase
        out["train: images ready to artifact saved"] = trained - images
    out["model image: artifact to image built"] = model - trained
    out[SERVE] = ready - model
    out[READY] = ready - run.started
    out["command exits (followed to COMPLETED)"] = run.finished - run.started
    return out


def what_was_built(log: list[Entry]) -> str:
    """A note: images built or reused, and whether uv downloaded anything."""
    texts = [e["text"] for e in log]
    actors = "reused" if any("already exists" in t for t in texts) else "built"
    model = first(log, MODEL_IMAGE_READY)
    shared = any("existing image: shared" in t for t in texts)
    trained = "reused" if values(model)["reused"] else "shared" if shared else "built"
    note = f"learner and aggregator images {actors}, trained-model image {trained}"
    if any(": Prepared " in t or "Download" in t for t in texts):
        note += "; uv fetched packages (its cache was not warm for them)"
    return note


def bare_workers(run: Run) -> float:
    """Seconds until fresh processes of the actors' Pythons, one per actor, started at once,
    have each imported and made the repository's ModelManager: the train stage's start-up
    without FLOps (no services, MQTT, frames or data)."""
    ready = values(first(run.log, IMAGES_READY))
    learners = sum(data_type(e) == "learner_data" for e in run.log)
    pythons = [ready["aggregator"]["python"]] + [ready["learner"]["python"]] * learners
    began = time.perf_counter()
    procs = [
        subprocess.Popen([python, "-c", MANAGER], cwd=ready["repo_path"], env=child_environment())
        for python in pythons
    ]
    if any(proc.wait(120) != 0 for proc in procs):
        raise RuntimeError("the repository's ModelManager did not load in its environment")
    return time.perf_counter() - began


def bare_server(run: Run) -> float:
    """Seconds from spawning the scoring server of ``run``'s model, alone, to its ready line."""
    model = values(first(run.log, MODEL_IMAGE_READY))
    server, _url, ready = serving.start(
        Path(model["python"]), "-m", "flops_env.serve", "--model-dir", model["model_dir"]
    )
    server.terminate()
    server.wait(10)
    return ready


def baselines(run: Run) -> dict[str, float]:
    """The same-run baselines of the phases the user's libraries' imports dominate."""
    return {WORKERS: bare_workers(run), SERVE: bare_server(run)}


def phase_rows(label: str, run: Run, load_avg: float, bare: dict[str, float]) -> list[Row]:
    """One row per phase of ``run``, with its baseline where it has one; the target on the
    command-to-ready figure."""
    rows = []
    for name, seconds in phases(run).items():
        row = Row(SCENARIO, f"{label}: {name}", round(seconds, 3), "s")
        if name in bare:
            row.baseline, row.note = round(bare[name], 3), BASELINE_NOTES[name]
        if name == READY:
            row.target = f"<= {TARGETS[label]:.0f} s"
            row.met = seconds <= TARGETS[label]
            row.note = f"{what_was_built(run.log)}; load average {load_avg:.2f} at the command"
            if os.environ.get("PYTHONDONTWRITEBYTECODE"):
                row.note += NO_BYTECODE
        rows.append(row)
    return rows


def seed_command(stack: Stack) -> Run:
    """The seed command on ``stack``, followed to COMPLETED (else ``RuntimeError``)."""
    name = seed_sla(stack)
    started = time.time()
    done = subprocess.run(
        [FLOPS, "project", "--project-sla-file-name", name, "--output", "json"],
        env=stack.env, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    finished = time.time()
    doc = json.loads(done.stdout or "{}")
    if doc.get("state") != "COMPLETED":
        tail = done.stderr.decode(errors="replace")[-800:]
        raise RuntimeError(f"the seed command ended {doc.get('state')}: {tail}")
    return Run(started, finished, doc["log"])


def mock_data(stack: Stack) -> None:
    """The README's ``flops mock_data --mock-sla-file-name mnist_multi.json``."""
    done = stack.cli("mock_data", "--mock-sla-file-name", "mnist_multi.json")
    if done.returncode != 0:
        raise RuntimeError(f"mock_data failed: {done.stderr[-500:]}")


def inference(run: Run, mode: Mode) -> list[Row]:
    """p50/p99 of one digit to ``run``'s inference service beside a trivial endpoint."""
    url = values(first(run.log, INFERENCE_READY))["url"]
    python = Path(values(first(run.log, MODEL_IMAGE_READY))["python"])
    (images, _labels), _source = load("mnist")
    one = json.dumps({"inputs": images[-1:].reshape(1, -1).tolist()}).encode()
    echo, echo_url, _ = serving.start(python, "-c", serving.TRIVIAL)
    try:
        model, bare = serving.Client(url), serving.Client(echo_url)
        samples = serving.measure(model, bare, one, mode.n(2000, 50), mode.n(10, 2))
    finally:
        echo.terminate()
        echo.wait(10)
    count = len(samples["inference"])
    figure = f"POST /invocations to the project's service, 1 row of 784, {count} requests"
    return serving.latency_rows(SCENARIO, samples, figure)


@contextmanager
def fresh_stack(root: Path) -> Iterator[Stack]:
    """A new mosquitto and stack (all stages) under ``root``, stopped on exit."""
    broker = Broker(root / "mosquitto").start()
    stack = Stack(root / "stack", broker, stages="all")
    try:
        yield stack.start()
    finally:
        stack.stop()
        broker.stop()


def timed(step: Callable[[], object]) -> float:
    """Seconds ``step`` took."""
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def run(root: Path, mode: Mode) -> list[Row]:
    """The scenario under ``root``: stack, mock data, cold and (full mode) warm, latency."""
    began = time.perf_counter()
    with fresh_stack(root) as stack:
        up = time.perf_counter() - began
        data = timed(lambda: mock_data(stack))
        load_avg = os.getloadavg()[0]
        cold = seed_command(stack)
        runs = {"cold": (cold, load_avg, baselines(cold))}
        if not mode.short:
            load_avg = os.getloadavg()[0]
            warm = seed_command(stack)
            runs["warm"] = (warm, load_avg, baselines(warm))
        latency = inference(runs["warm" if "warm" in runs else "cold"][0], mode)
    line = up + data + phases(cold)[READY]
    rows = [
        Row(SCENARIO, "cold: stack up (mosquitto + stack, fresh data dir)", round(up, 3), "s"),
        Row(SCENARIO, "cold: mock data (flops mock_data mnist_multi.json)", round(data, 3), "s"),
        Row(SCENARIO, "cold: whole seed line (stack up + mock data + command) to ready",
            round(line, 3), "s", target=f"<= {TARGETS['cold']:.0f} s",
            met=line <= TARGETS["cold"]),
    ]  # fmt: skip
    for label, (one, avg, bare) in runs.items():
        rows += phase_rows(label, one, avg, bare)
    return rows + latency


def main(argv: list[str] | None = None) -> int:
    """Run the scenario once and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the cold run only, 50 requests")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flops-bench-pipeline-") as tmp:
        print(table(run(Path(tmp), Mode(short=args.short))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

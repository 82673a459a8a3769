"""``python -m bench [--short] [--out FILE]``: run every scenario, print a table, write JSON.

Six fresh stacks, each with its own mosquitto: one for the CLI, latency and follower
scenarios (in that order, so the CLI and latency figures start from an almost empty
stack), one for ingest and then replay of the log ingest filled, one for the throughput
burst, one for the scale levels, one for the image build of the seed command and one
(all stages) for its training stage; the inference scenario (bench.serving) runs its own
server processes; the pipeline scenario (bench.pipeline, full mode only unless named with
``--only``) its own mosquitto and stack, fresh, for the seed command end to end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from bench import (
    build,
    cli_time,
    follower,
    ingest,
    latency,
    pipeline,
    replay,
    scale,
    serving,
    throughput,
    training,
)
from bench.harness import CONTROL_PLANE, ROOT, Broker, Mode, Row, Stack, machine
from bench.report import table

SCENARIOS = [
    cli_time.SCENARIO,
    latency.SCENARIO,
    follower.SCENARIO,
    ingest.SCENARIO,
    replay.SCENARIO,
    throughput.SCENARIO,
    scale.SCENARIO,
    build.SCENARIO,
    training.SCENARIO,
    serving.SCENARIO,
    pipeline.SCENARIO,
]
FULL_ONLY = {pipeline.SCENARIO}  # too long for --short's few seconds (tests/bench runs it alone)
DEFAULT_OUT = ROOT / "bench" / "results" / "latest.json"
BUDGETS = {"ingest": 120.0, "throughput": 70.0, "scale": 200.0}  # seconds, full mode


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--short", action="store_true", help="smoke mode: tiny counts, seconds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only these scenarios"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def running(root: Path, stages: str = "build", *, record: bool = False) -> Iterator[Stack]:
    """A fresh mosquitto and stack under ``root``, stopped on exit.

    ``record``: the benchmark runtime (services recorded, not run: the control plane alone).
    """
    broker = Broker(root / "mosquitto").start()
    stack = Stack(root / "stack", broker, stages=stages, record=record)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        broker.stop()


def guarded(
    results: dict[str, list[Row]], errors: dict[str, str], name: str, step: Callable[[], list[Row]]
) -> None:
    """Run one scenario; a failure is recorded (and printed), not fatal to the others."""
    started = time.perf_counter()
    print(f"== {name} ...", file=sys.stderr, flush=True)
    try:
        results[name] = step()
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        results[name] = [Row(name, "scenario failed", None, "", note=errors[name], met=False)]
    print(f"   {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)


def run_all(mode: Mode, only: list[str], root: Path) -> tuple[dict[str, list[Row]], dict[str, str]]:
    """Run the chosen scenarios; rows by scenario and errors by scenario."""
    results: dict[str, list[Row]] = {}
    errors: dict[str, str] = {}

    def budget(name: str) -> float:
        return mode.n(int(BUDGETS[name]), 20)

    if any(s in only for s in (cli_time.SCENARIO, latency.SCENARIO, follower.SCENARIO)):
        with running(root / "a", record=True) as stack:
            if cli_time.SCENARIO in only:
                guarded(results, errors, cli_time.SCENARIO, lambda: cli_time.run(stack, mode))
            if latency.SCENARIO in only:
                guarded(results, errors, latency.SCENARIO, lambda: latency.run(stack, mode))
            if follower.SCENARIO in only:
                guarded(results, errors, follower.SCENARIO, lambda: follower.run(stack, mode))
    if ingest.SCENARIO in only or replay.SCENARIO in only:
        with running(root / "d") as stack:
            project: list[str] = []

            def ingest_step() -> list[Row]:
                rows, project_id = ingest.run(stack, mode, budget("ingest"))
                project.append(project_id)
                return rows

            guarded(results, errors, ingest.SCENARIO, ingest_step)
            if replay.SCENARIO in only and project:
                guarded(
                    results, errors, replay.SCENARIO, lambda: replay.run(stack, project[0], mode)
                )
    if build.SCENARIO in only:
        with running(root / "e") as stack:
            guarded(results, errors, build.SCENARIO, lambda: build.run(stack, mode))
    if training.SCENARIO in only:
        with running(root / "t", stages="all") as stack:
            guarded(results, errors, training.SCENARIO, lambda: training.run(stack, mode))
    if serving.SCENARIO in only:  # its own server processes: no stack
        guarded(results, errors, serving.SCENARIO, lambda: serving.run(mode))
    if pipeline.SCENARIO in only:  # its own fresh mosquitto and stack under root / "p"
        guarded(results, errors, pipeline.SCENARIO, lambda: pipeline.run(root / "p", mode))
    if throughput.SCENARIO in only:
        with running(root / "b", record=True) as stack:
            step = lambda: throughput.run(stack, mode, budget("throughput"))  # noqa: E731
            guarded(results, errors, throughput.SCENARIO, step)
    if scale.SCENARIO in only:
        with running(root / "c") as stack:
            guarded(
                results, errors, scale.SCENARIO, lambda: scale.run(stack, mode, budget("scale"))
            )
    return results, errors


def keep_logs(root: Path, into: Path) -> None:
    """Copy the stacks' and brokers' logs out of the temporary directory."""
    shutil.rmtree(into, ignore_errors=True)
    for log in [*root.glob("*/stack/stack.out"), *root.glob("*/mosquitto/mosquitto.log")]:
        target = into / f"{log.parent.parent.name}-{log.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)


def git_state() -> dict[str, Any]:
    """The commit measured and the files that differ from it (read-only git commands)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(ROOT), *args],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line]
    return {"commit": git("rev-parse", "HEAD"), "changed_files": changed}


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 0 when every chosen scenario produced its figures."""
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt's per-publish warnings
    mode = Mode(args.short)
    only = args.only or [s for s in SCENARIOS if not (mode.short and s in FULL_ONLY)]
    command = shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]])
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    info = machine()
    code_before = git_state()
    start = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="flops-bench-"))
    try:
        results, errors = run_all(mode, only, root)
    finally:
        keep_logs(root, args.out.parent / f"{args.out.stem}-logs")
        shutil.rmtree(root, ignore_errors=True)
    duration = time.perf_counter() - start
    rows = [row for name in SCENARIOS for row in results.get(name, [])]
    code_after = git_state()
    print(table(rows))
    if any(name in results for name in (latency.SCENARIO, throughput.SCENARIO)):
        print(f"\nstart latency and throughput: {CONTROL_PLANE}")
    print(f"\n{len(rows)} figures in {duration:.0f}s; {command}")
    if code_after != code_before:
        print(f"note: the code changed during the run: {code_before} -> {code_after}")
    document = {
        "command": command,
        "argv": sys.argv,
        "mode": "short" if mode.short else "full",
        "started_at": started_at,
        "duration_s": round(duration, 1),
        "machine": info,
        "git": {"start": code_before, "end": code_after},
        "scenarios": {name: [r.as_dict() for r in results[name]] for name in results},
        "errors": errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results written to {args.out}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

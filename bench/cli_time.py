"""CLI wall time, cold: a new process each run, the installed ``flops`` entry point.

``flops --help``, and one full project start with ``--no-follow`` against the running
stack. Baseline: ``python -c pass`` with the same interpreter. Medians of several runs;
"cold" means a new process (the file system cache is warm, as it is for a user).
"""

from __future__ import annotations

import subprocess
import time

from bench.harness import FLOPS, PYTHON, SLA_NAME, Mode, Row, Stack, median, ms

SCENARIO = "cli"


def wall(args: list[str], env: dict[str, str], runs: int) -> tuple[float, list[float]]:
    """Median wall seconds of ``runs`` runs of ``args`` (each must exit 0), and all runs."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, timeout=60, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return median(times), times


def run(stack: Stack, mode: Mode) -> list[Row]:
    """Run the scenario against ``stack``; its rows."""
    runs = mode.n(9, 2)
    env = stack.env
    base, _ = wall([PYTHON, "-c", "pass"], env, runs)
    helped, helps = wall([FLOPS, "--help"], env, runs)
    start_args = [FLOPS, "project", "--project-sla-file-name", SLA_NAME, "--no-follow"]
    started, starts = wall(start_args, env, runs)
    note = f"median of {runs} new processes; baseline: `python -c pass`"
    return [
        Row(
            SCENARIO,
            "`flops --help` wall time",
            ms(helped),
            "ms",
            ms(base),
            "<= 150 ms",
            met=helped <= 0.150,
            note=f"{note}; min {ms(min(helps))} ms",
        ),
        Row(
            SCENARIO,
            "`flops project ... --no-follow` wall time",
            ms(started),
            "ms",
            ms(base),
            "<= 300 ms",
            met=started <= 0.300,
            note=f"{note}; min {ms(min(starts))} ms",
        ),
    ]

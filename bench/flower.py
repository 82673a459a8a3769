"""The base case under Flower's own runtime, for the training benchmark's comparison.

Flower 1.41 (``flwr``) in an environment of its own, built like our images
(``images.build_image``: uv, hash-locked, ``flops_utils`` beside it) with the learner
image's packages, never in our venv. Its deployment runtime runs the app of
``bench/flower_app.py``: ``flower-superlink`` and two ``flower-supernode`` processes (node
config ``partition-id``), then ``flwr run`` submits the app, whose ServerApp and ClientApps
Flower starts as its own subprocesses. The clock starts when the SuperLink is launched and
stops at the final round's aggregated evaluation (the app notes it in a times file).

Flower's simulation engine is not used: on this machine ``ray.init()`` alone takes about
16 s (17-18 s measured, 3.5 s of it CPU), which would say more about Ray here than
about Flower.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from images.build import BuildRequest, build_image
from images.store import ImageStore
from services.training.worker import WorkerSpec, worker_env

FLOWER = "flwr==1.41.0"
APP = Path(__file__).with_name("flower_app.py")
START_TIMEOUT = 120.0  # seconds for the SuperLink to answer
RUN_TIMEOUT = 300.0  # seconds for the whole run


@dataclass(frozen=True)
class Case:
    """The training to run: the repository, each node's data variables, the rounds."""

    repo: Path
    shares: list[dict[str, str]]
    rounds: int


def build_env(root: Path, requirements: list[str]) -> Path:
    """Flower's environment with ``requirements`` (the learner image's); its Python."""
    request = BuildRequest("bench/flower/env:" + FLOWER.split("==")[1], [FLOWER, *requirements])
    built = asyncio.run(build_image(request, ImageStore(root)))
    return built.image.python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_app(folder: Path, case: Case, times: Path) -> None:
    """The Flower app folder: its pyproject (components, run config) and the app module."""
    folder.mkdir(parents=True)
    shutil.copyfile(APP, folder / "flopsbench_app.py")
    config = {
        "repo": str(case.repo),
        "data": json.dumps(case.shares),
        "rounds": case.rounds,
        "nodes": len(case.shares),
        "times": str(times),
    }
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "[project]",
        'name = "flopsbench"',
        'version = "1.0.0"',
        'description = "FLOps benchmark: the seed ModelManager under Flower"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "[tool.hatch.build.targets.wheel]",
        'packages = ["."]',
        "[tool.flwr.app]",
        'publisher = "flops"',
        "[tool.flwr.app.components]",
        'serverapp = "flopsbench_app:server_app"',
        'clientapp = "flopsbench_app:client_app"',
        "[tool.flwr.app.config]",
        *(f"{key} = {json.dumps(value)}" for key, value in config.items()),
    ]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")


def _wait_up(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flower-superlink exited {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"flower-superlink did not answer within {START_TIMEOUT:g} s")


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(log.read_text(errors="replace").splitlines()[-8:])
    return ""


def _notes(times: Path) -> list[dict[str, Any]]:
    with contextlib.suppress(OSError):
        return [json.loads(line) for line in times.read_text().splitlines() if line.strip()]
    return []


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each started process group (Flower's own children with it), then SIGKILL."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(python: Path, case: Case, root: Path) -> dict[str, float]:
    """One run of the case on Flower's deployment runtime; its wall time and parts."""
    root.mkdir(parents=True)
    times, home, app = root / "times.jsonl", root / "flwr-home", root / "app"
    _write_app(app, case, times)
    link = _free_port()
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    bin_dir = python.parent
    # The same environment policy as our workers: thread caps, bytecode written.
    env = worker_env(WorkerSpec(python=str(python), repo=case.repo))
    env.update(FLWR_HOME=str(home), FLWR_DISABLE_UPDATE_CHECK="1")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        out = (root / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [str(bin_dir / args[0]), *args[1:]], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=root, start_new_session=True,
        )  # fmt: skip
        procs.append(proc)
        return proc

    launched = time.time()
    try:
        superlink = start(
            "superlink", "flower-superlink", "--insecure", "--host", "127.0.0.1",
            "--port", str(link), "--database", ":flwr-in-memory:",
            "--disable-runtime-dependency-installation",
        )  # fmt: skip
        for index in range(len(case.shares)):
            start(
                f"supernode{index}", "flower-supernode", "--insecure",
                "--superlink", f"127.0.0.1:{link}", "--port", str(_free_port()),
                "--node-config", f"partition-id={index} num-partitions={len(case.shares)}",
            )  # fmt: skip
        _wait_up(link, superlink, root / "superlink.log")
        up = time.time()
        submit = start("flwr-run", "flwr", "run", str(app), "bench", "--stream")
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            notes = _notes(times)
            if sum(n["what"] == "round" for n in notes) >= case.rounds:
                break
            if submit.poll() not in (None, 0):
                raise RuntimeError(
                    f"flwr run exited {submit.returncode}: {_tail(root / 'flwr-run.log')}"
                )
            time.sleep(0.02)
        else:
            raise RuntimeError(f"Flower did not finish {case.rounds} rounds in {RUN_TIMEOUT:g} s")
    finally:
        _stop(procs)
    return _figures(launched, up, notes)


def _figures(launched: float, up: float, notes: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds from the launch, and the parts, from the app's notes."""

    def at(what: str) -> float:
        return float(next(n["ts"] for n in notes if n["what"] == what))

    rounds = [n for n in notes if n["what"] == "round"]
    ends = [at("initial parameters"), *(float(n["ts"]) for n in rounds)]
    figures = {
        "total (launch to the final round's metrics)": ends[-1] - launched,
        "SuperLink up (launch to its health answer)": up - launched,
        "ServerApp started (its imports, to main)": at("server main") - up,
        "initial parameters (ModelManager import on the server)": ends[0] - at("server main"),
    }
    ready = sorted(float(n["seconds"]) for n in notes if n["what"] == "client ready")
    figures["ClientApp processes started (Flower starts one per message)"] = len(ready)
    figures["ClientApp model_manager import + data, median"] = ready[len(ready) // 2]
    for number, (begin, end) in enumerate(itertools.pairwise(ends), 1):
        figures[f"round {number}"] = end - begin
    figures["accuracy (last round)"] = float(rounds[-1]["accuracy"])
    return figures

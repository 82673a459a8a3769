"""What every scenario shares: mosquitto and stack processes, the SLA, results, statistics.

Processes are started the way the tests start them (tests/conftest.py and
tests/integration/conftest.py): mosquitto with ``broker.server.mosquitto_config`` (TCP_NODELAY,
raised queue limits, persistence), the stack as ``python -m cli up --broker external`` with
``XDG_DATA_HOME``/``XDG_CONFIG_HOME`` in a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bare import PahoLoad
from broker.process import MosquittoProcess, mosquitto_binary
from slas import bundled_dir

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FLOPS = str(Path(sys.executable).parent / "flops")  # the installed entry point
USER = "BenchUser"
SLA_NAME = "bench_sla.json"
Broker = MosquittoProcess  # the scenarios' name for it
# Said beside the start figures: what their stacks run (``Stack.record``, the quotas below).
CONTROL_PLANE = "control plane alone: benchmark runtime (services recorded, not run), quotas off"


@dataclass
class Row:
    """One figure of a scenario with its same-run baseline and its target."""

    scenario: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``value / baseline`` where both exist."""
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return {
            "scenario": self.scenario,
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


@dataclass(frozen=True)
class Mode:
    """Counts of the full run or of the short smoke run."""

    short: bool

    def n(self, full: int, short: int) -> int:
        """``full`` normally, ``short`` in smoke mode."""
        return short if self.short else full


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    """The median (the 50th percentile)."""
    return percentile(values, 50)


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded to microseconds."""
    return round(seconds * 1000, 3)


def bare_rows(scenario: str, what: str, samples: dict[str, list[float]], unit: str) -> list[Row]:
    """One row per bare baseline: ``<what> p50 / p99, <client>``, p50 in ms, p99 in the note."""
    return [
        Row(
            scenario,
            f"{what} p50 / p99, {name}",
            ms(percentile(values, 50)),
            "ms",
            note=f"p99 {ms(percentile(values, 99))} ms; {len(values)} {unit}",
        )
        for name, values in samples.items()
    ]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB from /proc/<pid>/status (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` from /proc/<pid>/stat (0 if it is gone).

    Unlike wall time, barely moved by other work on the machine: the suite reports the
    stack's CPU per start beside the rates.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    """A ``python -m cli up --broker external`` process isolated under ``root``."""

    root: Path
    broker: Broker
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    sla: dict[str, Any] = field(default_factory=dict)
    stages: str = "build"  # [stack] stages: the scenarios rest projects after the build
    # The benchmark runtime (runtimes/record.py): services other than observers recorded,
    # not run, so that starts measure the control plane alone.
    record: bool = False

    def __post_init__(self) -> None:
        repo = make_repo(self.root / "repos")
        sla = json.loads((bundled_dir() / "mnist_sklearn_small.json").read_text())
        sla.update(ml_repo_url=f"file://{repo}", customerID=USER)
        sla_dir = self.root / "slas"
        sla_dir.mkdir(parents=True, exist_ok=True)
        (sla_dir / SLA_NAME).write_text(json.dumps(sla, indent=4))
        self.sla = sla
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
        env.update(
            XDG_DATA_HOME=str(self.root / "data"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            FLOPS_SLA_DIR=str(sla_dir),
            FLOPS_USER=USER,
            # One user starts thousands of projects a second here: no per-user quota.
            FLOPS_MAX_LIVE_PROJECTS="0",
            FLOPS_MAX_STARTS_PER_MINUTE="0",
            FLOPS_STAGES=self.stages,
            FLOPS_BENCH_RECORD_SERVICES=str(self.record).lower(),
        )
        self.env = env

    @property
    def sla_file(self) -> Path:
        """The SLA file the scenarios start projects from."""
        return self.root / "slas" / SLA_NAME

    def paho_load(self) -> PahoLoad:
        """A paho load generator process (``bench.paho``) for this stack's user and SLA."""
        return PahoLoad(self.broker.address, USER, self.sla_file, SLA_NAME)

    @property
    def data_dir(self) -> Path:
        """The stack's data directory."""
        return self.root / "data" / "flops"

    @property
    def pid(self) -> int:
        """The stack's process id."""
        if self.proc is None:
            raise RuntimeError("the stack is not started")
        return self.proc.pid

    def start(self) -> Stack:
        """Start the stack and wait for its card (it is then ready)."""
        out = (self.root / "stack.out").open("ab")
        args = ["--broker", "external", "--broker-host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "cli", "up", *args, "--broker-port", str(self.broker.port)],
            env=self.env,
            stdout=out,
            stderr=out,
        )
        deadline = time.monotonic() + 60
        card = self.data_dir / "stack.json"
        while time.monotonic() < deadline:
            if card.exists() and json.loads(card.read_text())["pid"] == self.proc.pid:
                self._profile()
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("stack did not start:\n" + (self.root / "stack.out").read_text())

    def _profile(self) -> None:
        """With FLOPS_BENCH_PROFILE=DIR, sample the stack with py-spy until it exits.

        Raw folded stacks, one file per stack start; not part of the results.
        """
        folder = os.environ.get("FLOPS_BENCH_PROFILE")
        if not folder or self.proc is None:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        name = f"stack-{self.proc.pid}.raw"
        cmd = ["py-spy", "record", "-r", "200", "-f", "raw", "-o", str(Path(folder) / name)]
        quiet = subprocess.DEVNULL
        try:
            subprocess.Popen([*cmd, "--pid", str(self.proc.pid)], stdout=quiet, stderr=quiet)
        except FileNotFoundError:
            print(
                "FLOPS_BENCH_PROFILE: py-spy is not on PATH (pip install py-spy)", file=sys.stderr
            )

    def stop(self, wait: float = 60) -> int:
        """SIGTERM (the stack drains) and wait; its exit code (-9: it had to be killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) the stack process used so far (0 if it is gone)."""
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        """Resident memory of the stack process plus its mosquitto, in MiB."""
        return rss_mb(self.pid) + rss_mb(self.broker.pid)

    def log_count(self, text: str) -> int:
        """Lines of the stack's output so far that contain ``text``."""
        try:
            with (self.root / "stack.out").open(errors="replace") as out:
                return sum(text in line for line in out)
        except OSError:
            return 0

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the installed ``flops`` entry point against this stack."""
        return subprocess.run(
            [FLOPS, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def sql(self, database: str, query: str, *args: object) -> list[tuple[Any, ...]]:
        """A read-only query on one of the stack's SQLite files (the ground truth)."""
        uri = f"file:{self.data_dir / database}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            return list(db.execute(query, args).fetchall())
        finally:
            db.close()


# The smallest repository that passes the contract: its images hold numpy only, so a
# project's build takes about a second once uv's cache is warm.
MINIMAL_REPO = {
    "model_manager.py": (
        '"""A model manager that learns nothing: enough for the contract check."""\n\n\n'
        "class ModelManager:\n"
        '    """No model: the stack tests and benchmarks only build its images."""\n'
    ),
    "requirements.txt": "numpy==1.26.4\n",
}


def make_repo(
    parent: Path,
    name: str = "bench_repo",
    user: str = "bench-user",
    files: dict[str, str] | None = None,
) -> Path:
    """A local git repository with one commit of ``files`` (``MINIMAL_REPO``), laid out
    like github.com/<user>/<repo>."""
    repo = parent / user / name
    repo.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.org",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.org",
    }
    git = shutil.which("git") or "/usr/bin/git"
    subprocess.run([git, "init", "-q", str(repo)], check=True, env=env)
    for rel, text in (MINIMAL_REPO if files is None else files).items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    subprocess.run([git, "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(
        [git, "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "init"], check=True, env=env
    )
    return repo


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run(
        [mosquitto_binary(), "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_mb": mem,
        "python": platform.python_version(),
        "mosquitto": version[0] if version else "unknown",
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }

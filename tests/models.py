"""Small real models for the trained-model tests: scikit-learn's bundled digits (no download)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy.typing as npt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from flops_env.flavors import save_model

HELD_OUT = 97  # the last rows of the 1,797 digits, never trained on


@dataclass(frozen=True)
class Digits:
    """A train/held-out split of the 8x8 digits (64 features, values 0-16)."""

    x_train: npt.NDArray[Any]
    y_train: npt.NDArray[Any]
    x_held: npt.NDArray[Any]
    y_held: npt.NDArray[Any]


@cache
def digits() -> Digits:
    x, y = load_digits(return_X_y=True)
    return Digits(x[:-HELD_OUT], y[:-HELD_OUT], x[-HELD_OUT:], y[-HELD_OUT:])


@cache
def fitted_model() -> Any:
    """A LogisticRegression on the training digits, as the mnist example repo builds it."""
    data = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop before convergence: fine here
        return LogisticRegression(max_iter=200).fit(data.x_train, data.y_train)


def save_in_process(directory: Path, flavor: str = "sklearn") -> dict[str, Any]:
    """What the aggregator worker's save_model op does, here in the test's own process."""
    return save_model(fitted_model(), directory, flavor)


async def save_like_the_worker(directory: Path, flavor: str) -> dict[str, Any]:
    """A ``SaveModel`` callback for ``save_artifact`` that saves in this process."""
    return save_in_process(directory, flavor)


def start_server(model_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m flops_env.serve`` in this venv; the process and its URL once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flops_env.serve", "--model-dir", str(model_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the ready line; the test's timeout bounds the wait
    if not line.startswith("FLOPS_SERVE_READY "):
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the server did not start: {line!r} {err}")
    return proc, line.split()[1]


def stop_server(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, and the exit that follows."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()

"""Inference latency of the scoring server beside a bare round trip through the same stack.

``python -m bench.serving [--short] [--python PATH]``: the trained-model environment of the
seed project, built with uv (the mnist example's pins, scikit-learn 1.4.2, numpy 1.26.4,
scipy 1.13.0, plus skops, starlette, uvicorn and orjson; ``--python`` serves from another
environment instead), a LogisticRegression on the digits resampled to 28x28 (784 features)
trained and saved with skops in it, and served by ``python -m flops_env.serve``. Keep-alive
connections (the standard library's client, so the client adds little) alternate chunks of

- ``POST /invocations`` of one held-out digit (4.5 KB of JSON),
- the bare round trip: the same body ``POST``ed to a trivial endpoint that only reads it,
  on the same stack (``flops_env.serve.run_server``, same uvicorn settings, same
  environment) in a second process,
- ``GET /ping`` of the inference server (no body).

Also: a batch of 97 rows, spawn to ready, and the environment's build.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from bench.harness import Mode, Row, ms, percentile
from bench.report import table
from images.build import BuildRequest, build_image
from images.store import ImageStore
from services.trmodel.child import child_environment
from services.trmodel.image import SERVING_PACKAGES

SCENARIO = "inference"
SEED_PINS = ["scikit-learn==1.4.2", "numpy==1.26.4", "scipy==1.13.0", "skops"]

# Run in the environment: train as the example repo's model, save it as the worker would.
TRAIN = """
import sys, warnings
from pathlib import Path
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from flops_env.flavors import save_model
x, y = load_digits(return_X_y=True)
x = np.pad(np.kron(x.reshape(-1, 8, 8), np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))
x = (x * 255 / 16).round().reshape(len(y), -1)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = LogisticRegression(max_iter=100).fit(x[:-97], y[:-97])
out = Path(sys.argv[1])
save_model(model, out / "model", "sklearn")
np.savez(out / "held.npz", x=x[-97:], expected=model.predict(x[-97:]))
"""

# Run in the environment: the same stack with one endpoint that reads the body and answers.
TRIVIAL = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from flops_env.serve import bind, run_server

async def echo(request):
    await request.body()
    return Response(b'{"predictions":[0]}', media_type="application/json")

run_server(Starlette(routes=[Route("/echo", echo, methods=["POST"])]), bind("127.0.0.1", 0))
"""


def start(python: Path, *args: str) -> tuple[subprocess.Popen[str], str, float]:
    """A server (``python ARGS``), its URL, and seconds from spawn to its ready line."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [str(python), *args], stdout=subprocess.PIPE, text=True, env=child_environment()
    )
    assert proc.stdout is not None  # noqa: S101 - started with a pipe
    line = proc.stdout.readline()
    if not line.startswith("FLOPS_SERVE_READY "):
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, line.split()[1], time.perf_counter() - began


class Client:
    """One keep-alive connection; each call is one timed round trip."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[float, bytes]:
        """Seconds of one request and its answer's body."""
        headers = {"content-type": "application/json"} if body is not None else {}
        began = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - began
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return elapsed, data


Samples = dict[str, list[float]]


def measure(model: Client, trivial: Client, one: bytes, count: int, chunks: int) -> Samples:
    """``count`` of each kind of round trip, alternating in ``chunks``."""
    kinds: dict[str, Callable[[], float]] = {
        "inference": lambda: model.call("POST", "/invocations", one)[0],
        "bare": lambda: trivial.call("POST", "/echo", one)[0],
        "ping": lambda: model.call("GET", "/ping")[0],
    }
    for _ in range(min(50, count)):  # warm-up of every path
        for call in kinds.values():
            call()
    samples: Samples = {kind: [] for kind in kinds}
    per = max(1, count // chunks)
    while len(samples["inference"]) < count:
        n = min(per, count - len(samples["inference"]))
        for kind, call in kinds.items():
            samples[kind] += [call() for _ in range(n)]
    return samples


def serve_and_measure(python: Path, folder: Path, mode: Mode) -> tuple[Samples, list[float], float]:
    """Train and save in the environment, serve, measure."""
    subprocess.run([str(python), "-c", TRAIN, str(folder)], check=True, env=child_environment())
    with np.load(folder / "held.npz", allow_pickle=False) as held:
        rows, expected = held["x"], held["expected"].tolist()
    proc, url, ready = start(python, "-m", "flops_env.serve", "--model-dir", str(folder / "model"))
    echo, echo_url, _ = start(python, "-c", TRIVIAL)
    try:
        client = Client(url)
        batch = json.dumps({"inputs": rows.tolist()}).encode()
        if json.loads(client.call("POST", "/invocations", batch)[1])["predictions"] != expected:
            raise RuntimeError("the server's predictions differ from the model's")
        one = json.dumps({"inputs": rows[:1].tolist()}).encode()
        samples = measure(client, Client(echo_url), one, mode.n(2000, 50), mode.n(10, 2))
        batches = [client.call("POST", "/invocations", batch)[0] for _ in range(mode.n(200, 5))]
    finally:
        for server in (proc, echo):
            server.terminate()
            server.wait(10)
    return samples, batches, ready


def run(mode: Mode, python: Path | None = None) -> list[Row]:
    """Build the environment (unless given), then serve and measure; the rows."""
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        if python is None:  # built as the model_image stage builds it: images.build_image
            request = BuildRequest(
                "bench/admin/trained_model:seed", [*SEED_PINS, *SERVING_PACKAGES]
            )
            built_image = asyncio.run(build_image(request, ImageStore(Path(tmp) / "data")))
            python = built_image.image.python
        built = time.perf_counter() - began
        samples, batches, ready = serve_and_measure(python, Path(tmp), mode)
    return rows_of(samples, batches, ready, built)


def latency_rows(scenario: str, samples: Samples, figure: str) -> list[Row]:
    """p50 and p99 of ``figure`` (the inference samples) beside the bare round trip; the
    target, p50 <= 2x the bare p50, on the first."""
    rows = []
    for q in (50, 99):
        row = Row(
            scenario,
            f"p{q} {figure}",
            ms(percentile(samples["inference"], q)),
            "ms",
            ms(percentile(samples["bare"], q)),
            "<= 2x baseline" if q == 50 else "",
            note="baseline: the same body POSTed to a trivial endpoint of the same stack",
        )
        row.met = row.ratio is not None and row.ratio <= 2 if q == 50 else None
        rows.append(row)
    return rows


def rows_of(samples: Samples, batches: list[float], ready: float, built: float) -> list[Row]:
    """The figures: p50/p99 beside the bare round trip, the batch, start to ready."""
    inference = samples["inference"]
    figure = f"POST /invocations, 1 row of 784, {len(inference)} requests"
    rows = latency_rows(SCENARIO, samples, figure)
    ping = ms(percentile(samples["ping"], 50))
    rows += [
        Row(SCENARIO, f"p50 {figure}", ms(percentile(inference, 50)), "ms", ping,
            note="baseline: GET /ping of the inference server (no body)"),
        Row(SCENARIO, "p50 POST /invocations, 97 rows", ms(percentile(batches, 50)), "ms"),
        Row(SCENARIO, "spawn to ready (imports, model load)", round(ready, 3), "s"),
        Row(SCENARIO, "trained-model environment built by uv", round(built, 3), "s",
            note="0 when --python is given; the package cache's state decides the rest"),
    ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--short", action="store_true", help="smoke mode: tiny counts")
    parser.add_argument("--python", type=Path, help="serve from this environment's Python")
    args = parser.parse_args(argv)
    print(table(run(Mode(short=args.short), args.python)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

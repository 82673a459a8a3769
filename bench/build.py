"""``python -m bench.build [--repeat N]``: the image build of the seed repository, timed.

Three figures, each the median of N runs in fresh data dirs (uv's package cache warm: a
priming build runs first):

- cold: the bundled example's learner and aggregator images built (no image existed);
- reused: the same call again (the images exist: ``Latest FLOps images already exists``);
- by hand: the same ``uv pip compile --generate-hashes`` + ``uv venv`` +
  ``uv pip install --require-hashes`` of the learner's packages, run directly.

Targets on 2 cores (issue 12): cold <= 10 s, reused <= 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from images.actors import build_actor_images
from images.spec import actor_requirements, read_spec
from images.store import ImageStore
from images.uvrun import uv_binary
from mlrepos.sources import RepoSnapshot, resolve_repo

SEED_URL = "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn"
SOURCES = {SEED_URL: "bundled:flops_ml_repo_mnist_sklearn"}


async def _snapshot(data_dir: Path) -> RepoSnapshot:
    return await resolve_repo(SEED_URL, data_dir, repo_sources=SOURCES)


async def cold_and_reused(data_dir: Path) -> tuple[float, float, dict[str, float]]:
    """Seconds of a build without images, then of the same call with them, and the parts."""
    snapshot = await _snapshot(data_dir)
    store = ImageStore(data_dir)
    started = time.perf_counter()
    built = await build_actor_images(snapshot, store, registry="bench")
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = await build_actor_images(snapshot, store, registry="bench")
    reused = time.perf_counter() - started
    assert not built.reused and again.reused  # noqa: S101 - the benchmark checks its premise
    return cold, reused, dict(built.learner.manifest["durations"])


def by_hand(folder: Path, requirements: list[str]) -> float:
    """Seconds of the same uv lock, venv and install, run directly."""
    uv = uv_binary()
    (folder / "req.in").write_text("".join(f"{r}\n" for r in requirements))
    started = time.perf_counter()
    for args in (
        ["pip", "compile", "--generate-hashes", "--python", sys.executable, "-q",
         "-o", str(folder / "lock.txt"), str(folder / "req.in")],
        ["venv", "-q", "--python", sys.executable, str(folder / "venv")],
        ["pip", "install", "-q", "--require-hashes", "--python", str(folder / "venv/bin/python"),
         "-r", str(folder / "lock.txt")],
    ):  # fmt: skip
        subprocess.run([uv, *args], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    """Run the scenario and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.build", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flops-bench-build-") as tmp:
        root = Path(tmp)
        asyncio.run(cold_and_reused(root / "prime"))  # warms uv's cache, not measured
        snapshot = asyncio.run(_snapshot(root / "prime"))
        requirements, _ = actor_requirements(read_spec(snapshot.path / "conda.yaml"), "learner")
        colds, reuses, hands, parts = [], [], [], []
        for i in range(args.repeat):
            cold, reused, durations = asyncio.run(cold_and_reused(root / f"run{i}"))
            colds.append(cold)
            reuses.append(reused)
            parts.append(durations)
            (root / f"hand{i}").mkdir()
            hands.append(by_hand(root / f"hand{i}", requirements))
    med = statistics.median
    print(f"image build of the seed repository, median of {args.repeat} (uv cache warm)")
    print(f"  cold (no image; learner + aggregator): {med(colds):7.2f} s   target <= 10 s")
    print(
        f"  reused (the images exist):             {med(reuses) * 1000:7.1f} ms  target <= 500 ms"
    )
    print(f"  same uv lock + venv + install by hand: {med(hands):7.2f} s")
    keys = ("lock", "venv", "install", "copy", "total")
    print(
        "  learner image parts: " + ", ".join(f"{k} {med(p[k] for p in parts):.2f} s" for k in keys)
    )


if __name__ == "__main__":
    main()

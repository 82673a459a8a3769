"""A test ML repository, digit partitions and event collection.

Shared by the training tests: the sklearn digits resampled to 28x28 (784 features, as the
original's mnist example expects), held out 20 %, the rest split into
disjoint partitions written as ``.npz`` (``image`` uint8, ``label`` int64).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flops_env.flavors import load_model
from flops_utils._contract import PartitionSlice
from protocol.events import Event, Level
from services.aggregator.service import ArtifactPlan
from services.learner.service import DataSpec
from services.training.messages import EventData
from services.training.worker import WorkerSpec
from services.trmodel.artifact import MODEL_DIR, Environment, Repository

HERE = Path(__file__).resolve().parent
REPO = HERE / "repo"
BIG_REPO = HERE / "big_repo"
ROOT = HERE.parent.parent
PROJECT = "0123456789abcdef01234567"
USER = "Trainer"
TAG = "mnist"


@dataclass(frozen=True)
class Digits:
    """Partitions on disk and the held-out digits."""

    data_dir: Path
    partitions: list[str]  # files relative to data_dir
    test_x: np.ndarray[Any, Any]
    test_y: np.ndarray[Any, Any]


def digits_28() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The 1,797 sklearn digits as 28x28 uint8 images (0-255) and their labels."""
    from scipy.ndimage import zoom  # noqa: PLC0415 - heavy, only where data is made
    from sklearn.datasets import load_digits  # noqa: PLC0415

    digits = load_digits()
    images = zoom(digits.images, (1, 3.5, 3.5), order=1)
    scaled = np.clip(images * (255 / 16), 0, 255).astype(np.uint8)
    return scaled, digits.target.astype(np.int64)


def write_digits(data_dir: Path, partitions: int, seed: int = 7) -> Digits:
    """Shuffle, hold out 20 %, write the rest as ``partitions`` disjoint files."""
    x, y = digits_28()
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    held = len(y) // 5
    folder = data_dir / "data" / TAG
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, rows in enumerate(np.array_split(np.arange(held, len(y)), partitions)):
        name = f"data/{TAG}/part-{index}.npz"
        np.savez(data_dir / name, image=x[rows], label=y[rows])
        names.append(name)
    return Digits(data_dir, names, x[:held].reshape(held, -1), y[:held])


def artifact_plan(root: Path) -> ArtifactPlan:
    """Where the test aggregator saves its best model, and what the manifest records."""
    return ArtifactPlan(
        root=root,
        repository=Repository(url="https://example.org/test/repo", commit="0" * 40),
        environment=Environment(image="test/aggregator:0", digest="0" * 64, python="3.11"),
        data_tags=[TAG],
    )


def worker_spec(env: dict[str, str] | None = None, repo: Path = REPO) -> WorkerSpec:
    """The worker on a test repository in this Python, with the real flops_utils."""
    return WorkerSpec(
        python=sys.executable, repo=repo, env={"PYTHONPATH": str(ROOT), **(env or {})}
    )


def data_spec(digits: Digits, *indexes: int) -> DataSpec:
    """A learner's data: the given partitions, whole (``flops_utils._contract`` slices)."""
    slices = []
    for i in indexes:
        with np.load(digits.data_dir / digits.partitions[i], allow_pickle=False) as part:
            rows = len(part["label"])
        slices.append(asdict(PartitionSlice(TAG, digits.partitions[i], 0, rows)))
    return DataSpec(dir=digits.data_dir, tags=[TAG], slices=slices)


def fault_line() -> int:
    """The line of the test repository's injected ``raise``."""
    text = (REPO / "model_manager.py").read_text().splitlines()
    return next(i for i, line in enumerate(text, 1) if "# FAULT LINE" in line)


def train_examples(digits: Digits, *indexes: int) -> int:
    """How many training examples (80 %) the given partitions hold."""
    total = 0
    for index in indexes:
        with np.load(digits.data_dir / digits.partitions[index], allow_pickle=False) as part:
            total += int(0.8 * len(part["label"]))
    return total


def accuracy(artifact: Path, digits: Digits) -> float:
    """Accuracy of the artifact's saved model (loaded with its checks) on the held-out digits."""
    loaded = load_model(artifact / MODEL_DIR)
    predicted = loaded.model.predict(digits.test_x)
    return float(np.mean(predicted == digits.test_y))


@dataclass
class Events:
    """An ``Emit`` that keeps what it gets."""

    items: list[tuple[Event, EventData | None]] = field(default_factory=list)

    async def __call__(self, event: Event, data: EventData | None = None, /) -> None:
        self.items.append((event, data))

    def texts(self, level: Level | None = None) -> list[str]:
        """The texts, optionally of one level."""
        return [e.text for e, _ in self.items if level is None or e.level is level]

    def data(self) -> list[EventData]:
        """The typed data, in order."""
        return [d for _, d in self.items if d is not None]

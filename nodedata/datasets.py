"""The datasets FLOps can prepare on a node, as one table: name -> source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nodedata import digits, fashion
from nodedata.errors import DataError

Arrays = tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset's rows come from and what to tell the user about it."""

    load: Callable[[], Arrays]
    source: str  # shown in the command's output and stored in the manifest


DATASETS: dict[str, DatasetSource] = {
    "mnist": DatasetSource(digits.load_digits, digits.SOURCE),
    "fashion_mnist": DatasetSource(fashion.load_fashion, fashion.SOURCE),
}
SHUFFLE_SEED = 0  # partitions are a fixed shuffle of the rows: same data, same partitions


def load(name: str) -> tuple[Arrays, str]:
    """The rows of dataset ``name`` (images, labels), shuffled once, and their source text."""
    known = DATASETS.get(name)
    if known is None:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    images, labels = known.load()
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(labels))
    return (images[order], labels[order]), known.source

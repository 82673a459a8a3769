"""Dataset ``mnist`` here: scikit-learn's bundled handwritten digits, resampled to 28x28.

No package in the reachable registries ships MNIST. scikit-learn ships 1,797 real
handwritten digits as 8x8 images with values 0-16 (``sklearn/datasets/data/digits.csv.gz``,
from the UCI optical recognition data set). We read that file from the installed
distribution without importing sklearn, scale the values to 0-255 and resample each image
bilinearly to 28x28, so that repositories written for MNIST's 784 features run unchanged.
"""

from __future__ import annotations

import gzip
import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nodedata.errors import DataError

SOURCE = "scikit-learn's bundled handwritten digits (8x8), resampled to 28x28; not MNIST"
DIGITS_FILE = "sklearn/datasets/data/digits.csv.gz"
SIDE = 28


def digits_file() -> Path:
    """The digits CSV inside the installed scikit-learn distribution."""
    try:
        dist = importlib.metadata.distribution("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            "dataset 'mnist' needs scikit-learn (its bundled digits); install FLOps' dependencies"
        ) from None
    path = Path(str(dist.locate_file(DIGITS_FILE)))
    if not path.is_file():
        raise DataError(f"scikit-learn {dist.version} has no {DIGITS_FILE}")
    return path


def _weights(source: int, target: int) -> npt.NDArray[np.float64]:
    """A (target, source) matrix of bilinear weights with pixel centres aligned."""
    position = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, source - 1)
    frac = position - low
    matrix = np.zeros((target, source))
    matrix[np.arange(target), low] += 1 - frac
    matrix[np.arange(target), high] += frac
    return matrix


def resample(images: npt.NDArray[Any], side: int = SIDE) -> npt.NDArray[np.uint8]:
    """Images (N, h, w) with values 0-16 as (N, side, side) uint8 with values 0-255."""
    rows = _weights(images.shape[1], side)
    cols = _weights(images.shape[2], side)
    scaled = images.astype(np.float64) * (255.0 / 16.0)
    out: npt.NDArray[np.float64] = np.einsum("ih,nhw,jw->nij", rows, scaled, cols)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def load_digits() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """All 1,797 digits: images (N, 28, 28) uint8 0-255 and labels int64 0-9."""
    with gzip.open(digits_file(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    images = table[:, :-1].reshape(-1, 8, 8)
    return resample(images), table[:, -1].astype(np.int64)

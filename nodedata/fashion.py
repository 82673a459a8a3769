"""Dataset ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` package (IDX files).

The package installs the original Fashion-MNIST files (70,000 28x28 grey images of
clothing, 10 classes) under ``/usr/share/datasets/fashion-mnist/``. Without the package the
dataset is refused with a message naming it; FLOps never downloads data.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nodedata.errors import DataError

PACKAGE = "dataset-fashion-mnist"
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
SOURCE = f"Fashion-MNIST from Debian's {PACKAGE} package"
FILES = (
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
)
_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path) -> npt.NDArray[Any]:
    """One gzipped IDX file (magic 0x0000 08 <dims>) as a numpy array."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} cannot be read: {exc}") from exc
    if len(raw) < 4 or raw[0:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: {body.size} values for the shape {shape}")
    return body.reshape(shape)


def load_fashion(folder: Path = DEFAULT_DIR) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """All 70,000 images (N, 28, 28) uint8 and labels int64, training set first."""
    missing = [name for pair in FILES for name in pair if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"dataset 'fashion_mnist' needs Debian's {PACKAGE} package "
            f"(apt-get install {PACKAGE}); {folder / missing[0]} is missing"
        )
    images = [read_idx(folder / image) for image, _ in FILES]
    labels = [read_idx(folder / label) for _, label in FILES]
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)

"""``load_dataset()``: this learner's share of the node's data, under the original's import path.

It reads the slices its parent handed over (``flops_utils._contract``) from the partition
files (``.npz``, loaded with ``allow_pickle=False``) and returns one ``Dataset`` whose
columns are those of the partitions (``image`` and ``label`` for the bundled datasets), in
the ``numpy`` format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flops_utils._contract import PartitionSlice, read_data_environment
from flops_utils.dataset import Dataset

__all__ = ["Dataset", "NoDataError", "load_dataset"]


class NoDataError(LookupError):
    """The learner has no rows for its data tags (the original's message)."""


def _read_slice(data_dir: Path, part: PartitionSlice) -> dict[str, npt.NDArray[Any]]:
    path = data_dir / part.file
    where = f"partition {part.file} of tag '{part.tag}'"
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name][part.start : part.stop] for name in npz.files}
    except FileNotFoundError:
        raise NoDataError(f"{where} is gone from the node") from None
    except (OSError, ValueError) as exc:
        raise NoDataError(f"{where} is unreadable: {exc}") from None


def load_dataset(environ: Mapping[str, str] | None = None) -> Dataset:
    """The learner's rows of its data tags, as one dataset (``numpy`` format)."""
    data_dir, tags, slices = read_data_environment(os.environ if environ is None else environ)
    chosen = [s for s in slices if s.rows > 0]
    if not chosen:
        raise NoDataError(f"No matching data found for provided data tags '{tags}'")
    parts = [_read_slice(data_dir, s) for s in chosen]
    names = list(parts[0])
    for part, piece in zip(chosen, parts, strict=True):
        if list(piece) != names:
            raise NoDataError(
                f"partitions differ in columns: {names} and {list(piece)} (tag '{part.tag}')"
            )
    return Dataset({name: np.concatenate([p[name] for p in parts]) for name in names})

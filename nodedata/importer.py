"""The user's own data, imported under a tag: a ``.npz`` or a ``.csv`` file.

``.npz``
    Numeric arrays with one row per example, all with the same first dimension, e.g.
    ``image`` (N, 28, 28) or (N, 784) and ``label`` (N,). Loaded with ``allow_pickle=False``:
    object arrays are refused. The array names become the dataset's columns.
``.csv``
    A header row; a column named ``label`` (integers) and numeric feature columns. Stored
    as ``image`` (N, features) - ``uint8`` when every value is an integer 0-255, else
    ``float32`` - and ``label`` (N,) ``int64``.

Rows keep the file's order; partitions are contiguous runs of near-equal size.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nodedata.errors import DataError
from nodedata.store import TagManifest, write_tag


def _read_npz(path: Path) -> dict[str, npt.NDArray[Any]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz of numeric arrays: {exc}") from None


def _read_csv(path: Path) -> dict[str, npt.NDArray[Any]]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} cannot be read as CSV: {exc}") from None
    if len(rows) < 2 or "label" not in rows[0] or len(rows[0]) < 2:
        raise DataError(
            f"{path} needs a header row with a 'label' column and feature columns, and data rows"
        )
    header, body = rows[0], rows[1:]
    try:
        table = np.array([[float(v) for v in row] for row in body], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: every value must be a number ({exc})") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise DataError(f"{path}: every row must have {len(header)} values")
    at = header.index("label")
    labels, features = table[:, at], np.delete(table, at, axis=1)
    if not np.all(labels == np.rint(labels)):
        raise DataError(f"{path}: labels must be integers")
    whole = np.all(features == np.rint(features)) and features.min() >= 0 and features.max() <= 255
    image = features.astype(np.uint8 if whole else np.float32)
    return {"image": image, "label": labels.astype(np.int64)}


READERS = {".npz": _read_npz, ".csv": _read_csv}


def import_file(data_dir: Path, path: Path, tag: str, partitions: int = 1) -> TagManifest:
    """Store the rows of ``path`` as ``partitions`` partitions of ``tag`` (replacing it)."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: only {', '.join(READERS)} files can be imported")
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    return write_tag(
        data_dir, tag, reader(path), partitions, dataset=f"import:{path.name}", source=str(path)
    )

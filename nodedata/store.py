"""Partitions of a tag on disk: ``<data_dir>/data/<tag>/part-NNN.npz`` and ``manifest.json``.

A tag is written whole into a temporary folder and renamed into place, so a reader sees
the old tag or the new one, never half of either, and a failure leaves nothing behind.
Arrays are stored with ``numpy.savez`` and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nodedata.errors import DataError

TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MANIFEST = "manifest.json"
MAX_PARTITIONS = 1000


class ColumnInfo(BaseModel):
    """One array of every partition: its dtype and the shape of one row."""

    model_config = ConfigDict(extra="forbid")
    dtype: str
    shape: list[int]


class PartitionInfo(BaseModel):
    """One partition file of a tag."""

    model_config = ConfigDict(extra="forbid")
    file: str
    rows: int = Field(ge=1)
    sha256: str


class TagManifest(BaseModel):
    """What a tag holds: where it came from, its columns and partitions."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = 1
    tag: str
    dataset: str
    source: str
    created_at: float
    columns: dict[str, ColumnInfo]
    partitions: list[PartitionInfo]

    @property
    def rows(self) -> int:
        """Rows over all partitions."""
        return sum(p.rows for p in self.partitions)


def data_root(data_dir: Path) -> Path:
    """The folder that holds one folder per tag."""
    return data_dir / "data"


def check_tag(tag: str) -> str:
    """``tag`` if it can name a folder; a clear error otherwise."""
    if not TAG.match(tag):
        raise DataError(
            f"data tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return tag


def check_columns(columns: Mapping[str, npt.NDArray[Any]], partitions: int) -> int:
    """The common row count of ``columns``, which must suit ``partitions`` partitions."""
    if not columns:
        raise DataError("no arrays to store")
    rows = {len(a) for a in columns.values()}
    if len(rows) != 1:
        raise DataError(f"arrays differ in row count: {sorted(rows)}")
    count = rows.pop()
    if not 1 <= partitions <= min(count, MAX_PARTITIONS):
        raise DataError(
            f"number of partitions must be between 1 and {min(count, MAX_PARTITIONS)} "
            f"for {count} rows, got {partitions}"
        )
    for name, array in columns.items():
        if array.dtype.hasobject or not name.isidentifier():
            raise DataError(f"array {name!r} must be numeric with an identifier as its name")
    return count


def _write_partition(path: Path, columns: Mapping[str, npt.NDArray[Any]]) -> str:
    with path.open("wb") as fh:
        # object arrays were refused (check_columns): nothing here pickles
        np.savez(fh, **dict(columns))  # type: ignore[arg-type]  # numpy's stub: allow_pickle
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tag(
    data_dir: Path,
    tag: str,
    columns: Mapping[str, npt.NDArray[Any]],
    partitions: int,
    *,
    dataset: str,
    source: str,
) -> TagManifest:
    """Store ``columns`` as ``partitions`` contiguous, near-equal partitions of ``tag``.

    An existing tag is replaced as a whole.
    """
    check_tag(tag)
    count = check_columns(columns, partitions)
    root = data_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{tag}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        infos = []
        for i, rows in enumerate(np.array_split(np.arange(count), partitions)):
            name = f"part-{i:03d}.npz"
            digest = _write_partition(tmp / name, {k: v[rows] for k, v in columns.items()})
            infos.append(PartitionInfo(file=name, rows=len(rows), sha256=digest))
        manifest = TagManifest(
            tag=tag,
            dataset=dataset,
            source=source,
            created_at=time.time(),
            columns={
                k: ColumnInfo(dtype=str(v.dtype), shape=list(v.shape[1:]))
                for k, v in columns.items()
            },
            partitions=infos,
        )
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        _replace(tmp, root / tag)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _replace(new: Path, target: Path) -> None:
    old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex}")
    with contextlib.suppress(FileNotFoundError):
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(data_dir: Path, tag: str) -> TagManifest | None:
    """The manifest of ``tag``, or None when the node has no such tag."""
    if not TAG.match(tag):
        return None
    path = data_root(data_dir) / tag / MANIFEST
    try:
        return TagManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        raise DataError(f"{path} is unreadable: {exc}") from exc


def list_tags(data_dir: Path) -> list[TagManifest]:
    """Every complete tag on the node, by name."""
    root = data_root(data_dir)
    if not root.is_dir():
        return []
    found = (read_manifest(data_dir, p.name) for p in sorted(root.iterdir()) if p.is_dir())
    return [m for m in found if m is not None]


def delete_tag(data_dir: Path, tag: str) -> bool:
    """Remove ``tag`` and its partitions; whether it existed."""
    target = data_root(data_dir) / check_tag(tag)
    if not target.is_dir():
        return False
    gone = target.with_name(f".old-{tag}-{uuid.uuid4().hex}")
    target.rename(gone)
    shutil.rmtree(gone, ignore_errors=True)
    return True

"""How a learner's worker finds its data: three environment variables, defined only here.

The parent of a worker (our learner service, in our own environment) sets them from
``nodedata.assign``; ``load_dataset()`` in the worker (the user's environment) reads them.

``FLOPS_DATA_DIR``
    The node's data directory (partitions live under ``<dir>/data/<tag>/``).
``FLOPS_DATA_TAGS``
    JSON list of the SLA's data tags, e.g. ``["mnist"]`` (used in messages).
``FLOPS_DATA_SLICES``
    JSON list of this learner's disjoint share: objects
    ``{"tag": "mnist", "file": "data/mnist/part-000.npz", "start": 0, "stop": 599}`` with
    ``file`` relative to ``FLOPS_DATA_DIR`` and the rows ``[start, stop)`` of that file.

Standard library only: this module is imported in environments that hold only the user's
pinned packages and numpy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

DATA_DIR_VAR = "FLOPS_DATA_DIR"
DATA_TAGS_VAR = "FLOPS_DATA_TAGS"
DATA_SLICES_VAR = "FLOPS_DATA_SLICES"


@dataclass(frozen=True)
class PartitionSlice:
    """Rows ``[start, stop)`` of one partition file of a tag, relative to the data dir."""

    tag: str
    file: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        """How many rows the slice holds."""
        return self.stop - self.start


class DataContractError(ValueError):
    """The data variables are missing or malformed (a bug of the worker's parent)."""


def data_environment(
    data_dir: Path | str, tags: Sequence[str], slices: Sequence[PartitionSlice]
) -> dict[str, str]:
    """The variables a worker's parent sets so that ``load_dataset()`` serves ``slices``."""
    return {
        DATA_DIR_VAR: str(data_dir),
        DATA_TAGS_VAR: json.dumps(list(tags)),
        DATA_SLICES_VAR: json.dumps([asdict(s) for s in slices]),
    }


def _json_var(environ: Mapping[str, str], name: str) -> object:
    raw = environ.get(name)
    if raw is None:
        raise DataContractError(f"{name} is not set: the learner did not hand over its data")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise DataContractError(f"{name} is not valid JSON: {exc}") from None


def _slice(item: object) -> PartitionSlice:
    if not isinstance(item, dict) or set(item) != {"tag", "file", "start", "stop"}:
        raise DataContractError(f"{DATA_SLICES_VAR}: {item!r} is not a slice object")
    tag, file, start, stop = item["tag"], item["file"], item["start"], item["stop"]
    if not (isinstance(tag, str) and isinstance(file, str)):
        raise DataContractError(f"{DATA_SLICES_VAR}: tag and file must be strings in {item!r}")
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start <= stop):
        raise DataContractError(f"{DATA_SLICES_VAR}: bad row range in {item!r}")
    if Path(file).is_absolute() or ".." in Path(file).parts:
        raise DataContractError(f"{DATA_SLICES_VAR}: {file!r} is not inside the data dir")
    return PartitionSlice(tag, file, start, stop)


def read_data_environment(
    environ: Mapping[str, str],
) -> tuple[Path, list[str], list[PartitionSlice]]:
    """The data dir, tags and slices from the variables; a clear error names a bad one."""
    data_dir = environ.get(DATA_DIR_VAR, "")
    if not data_dir:
        raise DataContractError(f"{DATA_DIR_VAR} is not set: the learner did not hand over data")
    tags = _json_var(environ, DATA_TAGS_VAR)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DataContractError(f"{DATA_TAGS_VAR} must be a JSON list of strings")
    slices = _json_var(environ, DATA_SLICES_VAR)
    if not isinstance(slices, list):
        raise DataContractError(f"{DATA_SLICES_VAR} must be a JSON list")
    return Path(data_dir), list(tags), [_slice(s) for s in slices]

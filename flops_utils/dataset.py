"""A small column dataset with the parts of Hugging Face ``datasets.Dataset`` repositories use.

The original's ``load_dataset()`` returned an Arrow-backed ``datasets.Dataset``. Repositories
written for it call ``set_format("numpy")``, index columns (``ds["image"]``, ``ds["label"]``),
take ``len(ds)``, and some call ``train_test_split(test_size=0.2, seed=42)`` and
``with_transform(fn)`` before handing a split to a torch ``DataLoader``. This class offers
exactly those, over numpy arrays held in memory; anything else raises ``AttributeError``.

Formats: ``"numpy"`` (the default here), ``None``/``"python"`` (lists), ``"torch"`` (needs
torch in the environment). Rows (``ds[3]``) and batches (``ds[2:5]``) are dicts of columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Transform = Callable[[dict[str, Any]], dict[str, Any]]
FORMATS = (None, "python", "numpy", "np", "torch", "pt")


class Dataset:
    """Named columns of equal length; what ``load_dataset()`` returns."""

    def __init__(self, columns: Mapping[str, npt.NDArray[Any]]) -> None:
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns differ in length: {sorted(lengths)}")
        self._columns = dict(columns)
        self._rows = lengths.pop() if lengths else 0
        self._format: str | None = "numpy"
        self._format_columns: list[str] | None = None
        self._transform: Transform | None = None

    # -- shape -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._rows

    def __repr__(self) -> str:
        return f"Dataset({{features: {self.column_names}, num_rows: {self._rows}}})"

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return self._rows

    @property
    def column_names(self) -> list[str]:
        """The names of the columns, in order."""
        return list(self._columns)

    @property
    def format(self) -> dict[str, Any]:
        """The current output format, as ``datasets`` describes it."""
        columns = self._format_columns or self.column_names
        return {"type": self._format, "columns": columns, "output_all_columns": False}

    # -- formats and transforms --------------------------------------------------------
    def set_format(
        self,
        type: str | None = None,
        columns: Sequence[str] | None = None,
        output_all_columns: bool = False,
    ) -> None:
        """Return values as ``type`` from now on (``numpy``, ``python``/None, ``torch``)."""
        del output_all_columns  # other columns are always left out, as by default
        if type not in FORMATS:
            raise ValueError(f"format {type!r} is not supported here; use one of {FORMATS[1:]}")
        unknown = sorted(set(columns or ()) - set(self._columns))
        if unknown:
            raise ValueError(f"unknown columns {unknown}; the dataset has {self.column_names}")
        self._format = {"np": "numpy", "pt": "torch"}.get(type or "", type)
        self._format_columns = list(columns) if columns else None
        self._transform = None

    def with_format(
        self,
        type: str | None = None,
        columns: Sequence[str] | None = None,
        output_all_columns: bool = False,
    ) -> Dataset:
        """A copy that returns values as ``type``."""
        copy = self._copy()
        copy.set_format(type, columns, output_all_columns)
        return copy

    def reset_format(self) -> None:
        """Return python objects again, as a fresh ``datasets.Dataset`` does."""
        self.set_format(None)

    def set_transform(
        self, transform: Transform | None, columns: Sequence[str] | None = None
    ) -> None:
        """Apply ``transform`` to each batch (a dict of lists) when rows are read."""
        self.set_format("python", columns)
        self._transform = transform

    def with_transform(
        self, transform: Transform | None, columns: Sequence[str] | None = None
    ) -> Dataset:
        """A copy with ``transform`` applied on read."""
        copy = self._copy()
        copy.set_transform(transform, columns)
        return copy

    # -- reading -----------------------------------------------------------------------
    def __getitem__(self, key: str | int | slice | Sequence[int] | npt.NDArray[Any]) -> Any:  # noqa: ANN401
        if isinstance(key, str):
            if key not in self._columns:
                raise KeyError(f"column {key!r} not in the dataset; it has {self.column_names}")
            return self._out(self._columns[key])
        if isinstance(key, (int, np.integer)):
            index = int(key) + (self._rows if key < 0 else 0)
            if not 0 <= index < self._rows:
                raise IndexError(f"row {key} out of range for {self._rows} rows")
            batch = self._batch(np.array([index]))
            return {name: values[0] for name, values in batch.items()}
        indices = np.arange(self._rows)[key] if isinstance(key, slice) else np.asarray(key, int)
        return self._batch(indices)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(self._rows):
            yield self[index]

    def to_dict(self) -> dict[str, Any]:
        """All columns as python lists."""
        return {name: column.tolist() for name, column in self._columns.items()}

    # -- selections --------------------------------------------------------------------
    def select(self, indices: Sequence[int] | npt.NDArray[Any]) -> Dataset:
        """A new dataset of the rows at ``indices``, in that order."""
        chosen = np.asarray(indices, dtype=np.int64)
        copy = Dataset({name: column[chosen] for name, column in self._columns.items()})
        copy._format, copy._format_columns = self._format, self._format_columns
        copy._transform = self._transform
        return copy

    def shuffle(self, seed: int | None = None) -> Dataset:
        """A new dataset with the rows in a random order (reproducible with ``seed``)."""
        return self.select(np.random.default_rng(seed).permutation(self._rows))

    def train_test_split(
        self,
        test_size: float | int | None = None,
        train_size: float | int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> DatasetDict:
        """Split into ``{"train", "test"}`` (sizes as fractions or counts; default 75/25)."""
        n_test, n_train = _split_sizes(self._rows, test_size, train_size)
        order = np.random.default_rng(seed).permutation(self._rows) if shuffle else None
        indices = np.arange(self._rows) if order is None else order
        return DatasetDict(
            train=self.select(indices[:n_train]), test=self.select(indices[n_train:][:n_test])
        )

    # -- internals ---------------------------------------------------------------------
    def _copy(self) -> Dataset:
        return self.select(np.arange(self._rows))

    def _batch(self, indices: npt.NDArray[Any]) -> dict[str, Any]:
        names = self._format_columns or self.column_names
        if self._transform is not None:
            batch = {name: list(self._columns[name][indices]) for name in names}
            return self._transform(batch)
        return {name: self._out(self._columns[name][indices]) for name in names}

    def _out(self, values: npt.NDArray[Any]) -> Any:  # noqa: ANN401 - depends on the format
        if self._format == "numpy":
            return values
        if self._format == "torch":
            import torch  # type: ignore[import-not-found]  # noqa: PLC0415 - only if asked

            return torch.as_tensor(values)
        return values.tolist()


class DatasetDict(dict[str, Dataset]):
    """Named splits (``train``, ``test``), as ``train_test_split`` returns them."""

    def set_format(self, type: str | None = None, columns: Sequence[str] | None = None) -> None:
        """Set the format of every split."""
        for split in self.values():
            split.set_format(type, columns)

    def with_format(
        self, type: str | None = None, columns: Sequence[str] | None = None
    ) -> DatasetDict:
        """A copy whose splits return values as ``type``."""
        return DatasetDict({k: v.with_format(type, columns) for k, v in self.items()})

    def with_transform(self, transform: Transform | None) -> DatasetDict:
        """A copy whose splits apply ``transform`` on read."""
        return DatasetDict({k: v.with_transform(transform) for k, v in self.items()})


def _count(size: float | int, rows: int, name: str) -> int:
    if isinstance(size, float):
        if not 0.0 < size < 1.0:
            raise ValueError(f"{name} as a fraction must be between 0 and 1, got {size}")
        return math.ceil(size * rows) if name == "test_size" else math.floor(size * rows)
    if not 0 < size < rows:
        raise ValueError(f"{name}={size} must be between 0 and the {rows} rows")
    return size


def _split_sizes(rows: int, test: float | int | None, train: float | int | None) -> tuple[int, int]:
    if test is None and train is None:
        test = 0.25
    n_test = _count(test, rows, "test_size") if test is not None else None
    n_train = _count(train, rows, "train_size") if train is not None else None
    if n_test is None:
        n_test = rows - (n_train or 0)
    if n_train is None:
        n_train = rows - n_test
    if n_train + n_test > rows or n_train == 0 or n_test == 0:
        raise ValueError(f"a split of {rows} rows into {n_train} train and {n_test} test rows")
    return n_test, n_train

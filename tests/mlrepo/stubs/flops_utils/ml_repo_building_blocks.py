"""Test stand-in for load_dataset: this learner's slices from FLOPS_DATA_* variables.

FLOPS_DATA_SLICES here is a JSON list of ``{"file": <path under FLOPS_DATA_DIR>}``; the real
format is nodedata's, which only the learner's deployer and flops_utils need to agree on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


class Dataset:
    """The few parts of a Hugging Face Dataset the example repositories use."""

    def __init__(self, columns: dict[str, np.ndarray[Any, Any]]) -> None:
        self._columns = columns

    def set_format(self, kind: str) -> None:
        """Only numpy exists here."""
        if kind != "numpy":
            raise ValueError(kind)

    def __getitem__(self, column: str) -> np.ndarray[Any, Any]:
        return self._columns[column]

    def __len__(self) -> int:
        return len(self._columns["label"])


def load_dataset() -> Dataset:
    """The rows of this learner's slices."""
    root = Path(os.environ["FLOPS_DATA_DIR"])
    slices = json.loads(os.environ["FLOPS_DATA_SLICES"])
    if not slices:
        tags = json.loads(os.environ["FLOPS_DATA_TAGS"])
        raise FileNotFoundError(f"No matching data found for provided data tags '{tags}'")
    parts = [np.load(root / s["file"], allow_pickle=False) for s in slices]
    return Dataset(
        {
            "image": np.concatenate([p["image"] for p in parts]),
            "label": np.concatenate([p["label"] for p in parts]),
        }
    )

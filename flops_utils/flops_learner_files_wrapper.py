"""``load_ml_data()``: the name an earlier version of the original used for ``load_dataset``."""

from __future__ import annotations

from flops_utils.dataset import Dataset
from flops_utils.ml_repo_building_blocks import load_dataset


def load_ml_data() -> Dataset:
    """The learner's data, already in the ``numpy`` format (as that version returned it)."""
    return load_dataset()

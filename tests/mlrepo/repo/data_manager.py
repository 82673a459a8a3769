"""Test ML repository: this learner's digits, 80 % to train and 20 % to test."""

from __future__ import annotations

from typing import Any

from flops_utils.ml_repo_building_blocks import load_dataset


class DataManager:
    """Loads the data once."""

    def __init__(self) -> None:
        dataset = load_dataset()
        dataset.set_format("numpy")
        x, y = dataset["image"].reshape((len(dataset), -1)), dataset["label"]
        split = int(0.8 * len(x))
        self.data = (x[:split], x[split:]), (y[:split], y[split:])

    def get_data(self) -> Any:
        """((x_train, x_test), (y_train, y_test))."""
        return self.data

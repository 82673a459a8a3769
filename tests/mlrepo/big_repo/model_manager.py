"""Test ML repository with a large model: BIG_MB megabytes of float32 parameters."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class ModelManager:
    """Only parameters; no data, no training."""

    def __init__(self) -> None:
        size = int(float(os.environ.get("BIG_MB", "300")) * 1e6) // 4
        self.parameters = [np.ones(size, dtype=np.float32), np.zeros(10, dtype=np.float32)]

    def get_model_parameters(self) -> Any:
        return self.parameters

    def set_model_parameters(self, parameters: Any) -> None:
        self.parameters = parameters

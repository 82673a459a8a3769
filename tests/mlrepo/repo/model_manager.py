"""Test ML repository in the shape of the original mnist example (written for these tests).

``TEST_FAULT=<kind>:<method>:<n>`` injects a fault in the n-th call of ``fit`` or
``evaluate``: ``raise`` an exception, ``crash`` the process (SIGKILL), or ``pause`` (write
``<TEST_MARKER>/paused-<pid>`` and wait for ``<TEST_MARKER>/release``).
"""

from __future__ import annotations

import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from data_manager import DataManager
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from flops_utils.ml_repo_templates import ModelManagerTemplate


def fault(method: str, call: int) -> None:
    """The injected fault of this call, if any."""
    kind, where, nth = [*os.environ.get("TEST_FAULT", "none:none:0").split(":"), "", ""][:3]
    if where != method or int(nth or 0) != call:
        return
    if kind == "raise":
        raise RuntimeError(f"injected failure in {method} call {call}")  # FAULT LINE
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "pause":
        marker = Path(os.environ["TEST_MARKER"])
        (marker / f"paused-{os.getpid()}").touch()
        while not (marker / "release").exists():
            time.sleep(0.02)


class ModelManager(ModelManagerTemplate):
    """LogisticRegression with one local iteration per fit, starting from zeros."""

    def __init__(self) -> None:
        self.model = LogisticRegression(max_iter=1, warm_start=True)
        self.model.classes_ = np.arange(10)
        self.model.coef_ = np.zeros((10, 784))
        self.model.intercept_ = np.zeros((10,))
        self.calls = {"fit": 0, "evaluate": 0}

    def set_model_data(self) -> None:
        (self.x_train, self.x_test), (self.y_train, self.y_test) = DataManager().get_data()

    def get_model(self) -> Any:
        return self.model

    def get_model_parameters(self) -> Any:
        return [self.model.coef_, self.model.intercept_]

    def set_model_parameters(self, parameters: Any) -> None:
        self.model.coef_, self.model.intercept_ = parameters[0], parameters[1]

    def fit_model(self) -> int:
        self.calls["fit"] += 1
        fault("fit", self.calls["fit"])
        print("fitting", flush=True)  # must not disturb the worker's frames
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(self.x_train, self.y_train)
        return len(self.x_train)

    def evaluate_model(self) -> tuple[Any, Any, int]:
        self.calls["evaluate"] += 1
        fault("evaluate", self.calls["evaluate"])
        probabilities = self.model.predict_proba(self.x_test)
        loss = log_loss(self.y_test, probabilities, labels=range(10))
        return loss, self.model.score(self.x_test, self.y_test), len(self.x_test)

"""Test stand-in: the ModelManager contract of FLOps ML repositories."""

from __future__ import annotations

import abc
from typing import Any


class ModelManagerTemplate(abc.ABC):
    """What a repository's ModelManager implements."""

    @abc.abstractmethod
    def set_model_data(self) -> None:
        """Load this learner's data."""

    @abc.abstractmethod
    def get_model(self) -> Any:
        """The model object."""

    @abc.abstractmethod
    def get_model_parameters(self) -> Any:
        """The parameters as a list of arrays."""

    @abc.abstractmethod
    def set_model_parameters(self, parameters: Any) -> None:
        """Replace the parameters."""

    @abc.abstractmethod
    def fit_model(self) -> int:
        """Train locally; the number of training examples."""

    @abc.abstractmethod
    def evaluate_model(self) -> tuple[Any, Any, int]:
        """Loss, accuracy and the number of test examples."""

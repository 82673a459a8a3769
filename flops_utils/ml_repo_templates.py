"""The two abstract classes an ML repository implements (import path of the original).

``model_manager.py`` defines ``ModelManager(ModelManagerTemplate)``; by convention
``data_manager.py`` defines ``DataManager(DataManagerTemplate)`` whose data comes from
``flops_utils.ml_repo_building_blocks.load_dataset``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class DataManagerTemplate(ABC):
    """Loads this learner's data (``load_dataset()``) and prepares it for the model."""

    @abstractmethod
    def _prepare_data(self) -> Any:  # noqa: ANN401 - whatever the repository prepares
        """Load the data with ``load_dataset()`` and preprocess it."""

    @abstractmethod
    def get_data(self) -> tuple[Any, Any]:
        """The prepared training and evaluation data, for the ModelManager."""


class ModelManagerTemplate(ABC):
    """The model of a repository as the learners and the aggregator drive it.

    ``set_model_data`` is called by learners only; the aggregator builds a ModelManager
    without data, so it must not be called from ``__init__``.
    """

    @abstractmethod
    def set_model_data(self) -> None:
        """Load this learner's data (e.g. ``DataManager().get_data()``) for the model."""

    @abstractmethod
    def get_model(self) -> Any:  # noqa: ANN401 - the library's model object
        """The model object itself (saved with the SLA's ``ml_model_flavor``)."""

    @abstractmethod
    def get_model_parameters(self) -> Any:  # noqa: ANN401 - a list of numpy arrays
        """The parameters as a list of numpy arrays."""

    @abstractmethod
    def set_model_parameters(self, parameters: Any) -> None:  # noqa: ANN401
        """Replace the parameters with ``parameters`` (a list of numpy arrays)."""

    @abstractmethod
    def fit_model(self) -> int:
        """Train locally; the number of training examples used."""

    @abstractmethod
    def evaluate_model(self) -> tuple[Any, Any, int]:
        """Evaluate: ``(loss, accuracy, number of evaluation examples)``."""

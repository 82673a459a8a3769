"""The errors of federated training.

TrainingError               (a FlopsError) anything training raises on purpose
├── WorkerError             the worker could not start, crashed, timed out or misspoke
├── UserCodeError           the user's code raised; carries its type, file and line
├── ModelTooLargeError      parameters over ``max_model_bytes``, refused up front
├── NoDataError             no data for the learner's tags
├── WireError               a training message that cannot be accepted
└── TrainingFailedError     the training cannot go on (not enough learners, ...)
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import FlopsError


class TrainingError(FlopsError):
    """Root of the errors of federated training."""


class WorkerError(TrainingError):
    """The worker process could not start, crashed, timed out or sent nonsense."""


@dataclass(frozen=True, slots=True)
class Where:
    """An exception of user code: its type, message and innermost place in the repository."""

    type: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        place = f" (at {self.file}:{self.line})" if self.file else ""
        return f"{self.type}: {self.message}{place}"


class UserCodeError(TrainingError):
    """The user's ModelManager raised in ``operation``."""

    def __init__(self, operation: str, where: Where) -> None:
        super().__init__(f"{operation} raised {where}")
        self.operation = operation
        self.where = where


class ModelTooLargeError(TrainingError):
    """The model's parameters are over ``max_model_bytes``; nothing was sent."""


class NoDataError(TrainingError):
    """A learner has no data for its tags."""


class WireError(TrainingError):
    """A training message that cannot be accepted (bad frame, schema or size)."""


class TrainingFailedError(TrainingError):
    """The training cannot go on; the message says which learner and why."""

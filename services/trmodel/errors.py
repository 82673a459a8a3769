"""The errors of the trained-model package, under FLOps' one root.

FlopsError (core.errors)
└── TrainedModelError            anything this package raises on purpose
    ├── ArtifactError            an artifact is missing, invalid, or cannot be written
    ├── InferenceServiceError    the scoring server cannot start or keeps failing
    └── PredictError             ``flops predict`` could not get predictions
        ├── InputFileError       the inputs cannot be read (names the file and why)
        ├── ServiceUnavailableError   nothing answers at the inference URL
        └── PredictionRejectedError   the server refused the input (its reason)
"""

from __future__ import annotations

from core.errors import FlopsError


class TrainedModelError(FlopsError):
    """Root of the errors of the trained model's artifact, image, service and client."""


class ArtifactError(TrainedModelError):
    """An artifact is missing, invalid, or cannot be written."""


class InferenceServiceError(TrainedModelError):
    """The scoring server could not start, or failed more often than its restart policy allows."""


class PredictError(TrainedModelError):
    """``flops predict`` could not get predictions."""


class InputFileError(PredictError):
    """The inputs cannot be read; the message names the file and the problem."""


class ServiceUnavailableError(PredictError):
    """Nothing answers at the inference URL."""


class PredictionRejectedError(PredictError):
    """The inference service answered with an error; ``status`` and its message say why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

"""What the post-training stages hand each other: the data of the events that end them.

- ``trained`` (the training stage's end): ``values["artifact"]`` is the artifact's folder
  (``services.trmodel.artifact``), beside ``run_id``, ``round``, ``accuracy``, ``loss``, ``rounds``.
- ``model_image_ready`` (the ``model_image`` stage's end): ``ModelImageReady``.
- ``inference_ready`` (the ``serve`` stage's end): ``url``, ``port``, ``pid``, ``restarts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.errors import ConfigError

TRAINED = "trained"
MODEL_IMAGE_READY = "model_image_ready"
INFERENCE_READY = "inference_ready"


class ModelImageReady(BaseModel):
    """The ``model_image`` stage's output: the trained-model image and the artifact it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    image: str  # <registry>/<customer>/trained_model:<run id>
    digest: str
    python: str  # the image's interpreter: runs flops_env.serve
    artifact: str  # the artifact's folder
    model_dir: str  # its model/ folder, what the scoring server loads
    run_id: str
    reused: bool  # the image existed: nothing was built


def output_of(outputs: Mapping[str, Any], data_type: str) -> dict[str, Any]:
    """The values of the earlier stage's output of ``data_type``; ``ConfigError`` if none."""
    for output in outputs.values():
        if isinstance(output, Mapping) and output.get("type") == data_type:
            values = output.get("values")
            if isinstance(values, dict):
                return values
    raise ConfigError(f"no earlier stage ended with {data_type!r} data")


def trained_artifact(outputs: Mapping[str, Any]) -> str:
    """The artifact folder the training stage reported."""
    artifact = output_of(outputs, TRAINED).get("artifact")
    if not isinstance(artifact, str) or not artifact:
        raise ConfigError(f"the {TRAINED!r} data names no artifact folder")
    return artifact


def read_model_image(outputs: Mapping[str, Any]) -> ModelImageReady:
    """The ``model_image`` stage's output as ``ModelImageReady``."""
    try:
        return ModelImageReady.model_validate(output_of(outputs, MODEL_IMAGE_READY))
    except ValueError as exc:
        raise ConfigError(f"the {MODEL_IMAGE_READY!r} data is invalid: {exc}") from exc


def inference_url(outputs: Mapping[str, Any]) -> str:
    """The inference service's URL the ``serve`` stage reported, or ``""``."""
    try:
        url = output_of(outputs, INFERENCE_READY).get("url")
    except ConfigError:
        return ""
    return url if isinstance(url, str) else ""

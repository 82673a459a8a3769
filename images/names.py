"""Image names as the original's: ``<registry>/<user>/<repo>/<kind>:<commit>``."""

from __future__ import annotations

import re
from typing import Literal

ActorKind = Literal["learner", "aggregator"]
_PART = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _part(value: str, what: str) -> str:
    low = value.lower()
    if not _PART.match(low):
        raise ValueError(f"{what} {value!r} cannot be part of an image name")
    return low


TRACKING_TAG = "-mlflow"  # the aggregator's image with MLflow tracking is another image


def actor_image_name(
    registry: str, user: str, repo: str, kind: ActorKind, commit: str, *, tracking: bool = False
) -> str:
    """The learner's or aggregator's image of one commit of a repository.

    The aggregator's image with MLflow (setting ``mlflow_tracking``) is tagged
    ``<commit>-mlflow``: a stack that turns tracking on never reuses one without it.
    """
    tag = commit + (TRACKING_TAG if tracking and kind == "aggregator" else "")
    return f"{registry}/{_part(user, 'user')}/{_part(repo, 'repository')}/{kind}:{tag}"


def trained_model_image_name(registry: str, customer: str, run_id: str) -> str:
    """The image that serves a project's trained model."""
    return f"{registry}/{_part(customer, 'customer')}/trained_model:{run_id}"

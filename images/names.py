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


def actor_image_name(registry: str, user: str, repo: str, kind: ActorKind, commit: str) -> str:
    """The learner's or aggregator's image of one commit of a repository."""
    return f"{registry}/{_part(user, 'user')}/{_part(repo, 'repository')}/{kind}:{commit}"


def trained_model_image_name(registry: str, customer: str, run_id: str) -> str:
    """The image that serves a project's trained model."""
    return f"{registry}/{_part(customer, 'customer')}/trained_model:{run_id}"

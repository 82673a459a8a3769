"""What the build stage hands the stages after it: the ``images_ready`` event's data.

The builder ends its stage with an event whose data is ``Facts(type="images_ready",
values=ImagesReady(...).model_dump(mode="json"))``; the manager keeps it as the stage's
output (``StageInput.outputs["build"]``), and the training stage reads it back with
``read_images_ready``::

    ready = read_images_ready(given.outputs["build"])
    ready.learner.python     # the learner environment's interpreter: run the worker with it
    ready.repo_path          # the exported commit every later stage uses
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import ConfigError
from images.store import Image

if TYPE_CHECKING:
    from images.actors import ActorImages
    from mlrepos.sources import RepoSnapshot
    from services.builder.service import BuilderConfig

IMAGES_READY = "images_ready"  # the data type that ends the build stage


class ImageRef(BaseModel):
    """One built environment image on the node."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str  # <registry>/<user>/<repo>/{learner,aggregator}:<commit>
    digest: str
    path: str  # the image folder (venv/, site/, manifest.json)
    python: str  # <path>/venv/bin/python: the interpreter of the user's code

    @classmethod
    def of(cls, image: Image) -> ImageRef:
        """The reference of a built image."""
        return cls(
            name=image.name, digest=image.digest, path=str(image.path), python=str(image.python)
        )


class ImagesReady(BaseModel):
    """The build stage's output: one commit of the repository and its two images."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repo_url: str  # the SLA's ml_repo_url
    source: str  # what was used: the URL, a local path or "bundled:<name>"
    fallback: bool  # a bundled example stood in for an unreachable URL
    commit: str  # 40 hex; every later stage uses this commit
    repo_user: str
    repo_name: str
    repo_path: str  # the exported files of the commit
    data_dir: str  # the node's data dir (data/<tag>/ for the learners' shares)
    data_tags: list[str] = Field(default_factory=list)  # the SLA's
    learner: ImageRef
    aggregator: ImageRef
    reused: bool  # both images existed: nothing was built
    durations: dict[str, float] = Field(default_factory=dict)  # the original's keys


def images_ready(
    snapshot: RepoSnapshot, images: ActorImages, config: BuilderConfig
) -> dict[str, Any]:
    """The JSON values of the ``images_ready`` event."""
    ready = ImagesReady(
        repo_url=snapshot.url,
        source=snapshot.source,
        fallback=snapshot.fallback,
        commit=snapshot.commit,
        repo_user=snapshot.user,
        repo_name=snapshot.repo,
        repo_path=str(snapshot.path),
        data_dir=config.data_dir,
        data_tags=list(config.data_tags),
        learner=ImageRef.of(images.learner),
        aggregator=ImageRef.of(images.aggregator),
        reused=images.reused,
        durations=dict(images.durations),
    )
    return ready.model_dump(mode="json")


def read_images_ready(output: Mapping[str, Any]) -> ImagesReady:
    """The build stage's output (the event data as stored) as ``ImagesReady``."""
    values = output.get("values", output)
    try:
        return ImagesReady.model_validate(values)
    except ValueError as exc:
        raise ConfigError(f"the build stage's output is not {IMAGES_READY}: {exc}") from exc

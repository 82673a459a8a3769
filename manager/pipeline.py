"""THE table of project stages: what starts each, what it deploys, what ends it, what follows.

A project goes through the stages of a ``Pipeline`` one after the other. Entering a stage
deploys its services (``Stage.services``) and announces each in the project's log; an event
whose data type is the stage's ``ends_on`` ends it (the data is kept as the stage's output
for the stages after it), undeploys what it says, and enters ``next``. When the last stage
ends, the project is COMPLETED. A stage is data; adding one is an entry here plus the
services it deploys (``services.kinds``)::

    def training(given: StageInput) -> list[Want]:
        learners = given.sla.training_configuration.min_available_clients
        return [Want(AGGREGATOR, AggregatorConfig(...))] + [
            Want(LEARNER, LearnerConfig(...), index=i) for i in range(learners)
        ]

    STAGES["train"] = Stage("train", training, ends_on="trained", next="model_image",
                            state=ProjectState.TRAINING)
    STAGES["build"] = replace(STAGES["build"], next="train")  # instead of "images_ready"

After training come ``POST_TRAINING``: ``model_image`` (the trained-model image) and
``serve`` (the inference service, left running when the project is COMPLETED).

The store records which stage a project is in and whether its services are deployed; it
does not know what the stages are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from protocol.states import ProjectState
from services.builder.facts import IMAGES_READY, read_images_ready
from services.builder.service import BuilderConfig
from services.kinds import AGGREGATOR, BUILDER, CLUSTER, LEARNER, TRBUILDER, TRMODEL, ServiceKind
from services.tracking.client import TrackingSettings
from services.training.entries import TRAINED
from services.training.plan import NO_POST_TRAINING, training_wants
from services.training.settings import TrainingSettings
from services.trmodel.entries import TrBuilderConfig, TrModelConfig
from services.trmodel.facts import (
    INFERENCE_READY,
    MODEL_IMAGE_READY,
    read_model_image,
    trained_artifact,
)
from slas import ProjectSLA

STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class Settings:
    """The stack's settings that stages hand their services."""

    registry: str = "localhost:5073"
    git_timeout: float = 30.0
    heartbeat_interval: float = 15.0
    data_dir: str = "."  # the node's data dir: repositories, images, data
    repo_sources: Mapping[str, str] = field(default_factory=dict)  # URL -> local source
    build_progress_interval: float = 2.0
    build_timeout: float = 900.0
    training_clusters: int = 2  # hierarchical mode: cluster aggregators (no Clusters runtime)
    training: TrainingSettings = field(default_factory=TrainingSettings)  # the actors' own
    inference_host: str = "127.0.0.1"  # the interface the inference services listen on
    inference_port: int = 0  # 0: each keeps the port it got first (a free one)
    mlflow_tracking: bool = False  # the aggregator logs to MLflow (services.tracking)
    mlflow_tracking_uri: str = ""  # "": sqlite under data_dir/mlflow


@dataclass(frozen=True)
class StageInput:
    """What a stage decides from: the project, its SLA, earlier stages' outputs, settings."""

    project_id: str
    user: str
    sla: ProjectSLA
    outputs: Mapping[str, Any]  # by stage name: the data of the event that ended it
    settings: Settings
    # The runtime's active clusters, asked for on entry to a stage whose ``places`` says so
    # on a runtime that has clusters (runtimes.base.Clusters: Oakestra); () otherwise.
    clusters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Want:
    """One service a stage deploys: its kind, its config, its index among several."""

    kind: ServiceKind[Any]
    config: BaseModel
    index: int | None = None
    before: tuple[str, ...] = ()  # lines for the project's log before it is deployed


def _always(_given: StageInput) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One stage of a project; see the module docstring."""

    name: str
    services: Callable[[StageInput], list[Want]]  # deployed when the stage is entered
    ends_on: str | None  # the data type of the event that ends it; None: it never ends
    next: str | None = None  # the stage that follows; None: the project is then COMPLETED
    state: ProjectState | None = None  # the project's state from its entry, if it sets one
    enters: Callable[[StageInput], bool] = _always  # entry condition; False: skipped
    # Whether its services go to the runtime's clusters: the manager then asks the runtime
    # which are active (StageInput.clusters) before calling ``services``.
    places: Callable[[StageInput], bool] = lambda _given: False
    undeploys: tuple[str, ...] = ()  # kinds of the project's services stopped at its end
    closing: Callable[[StageInput], str | None] = lambda _given: None  # a line at its end
    # Its services outlive it and may report its data again (the inference service on a
    # new port after a restart): the latest such data replaces its output.
    refreshed: bool = False

    def __post_init__(self) -> None:
        if not STAGE_NAME.match(self.name):
            raise ValueError(f"stage name {self.name!r}: lower-case letters, digits, '_'")


@dataclass(frozen=True)
class Pipeline:
    """The stages of a project and the first of them."""

    first: str
    stages: Mapping[str, Stage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = set(self.stages)
        wrong = [s.name for s in self.stages.values() if s.next is not None and s.next not in names]
        if self.first not in names or wrong:
            raise ValueError(f"pipeline: unknown first stage or next of {wrong}")

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (``""``: the first)."""
        return self.stages[name or self.first]


def build(given: StageInput) -> list[Want]:
    """The image build: one builder for the SLA's repository."""
    settings = given.settings
    config = BuilderConfig(
        repo_url=given.sla.ml_repo_url,
        registry=settings.registry,
        data_dir=settings.data_dir,
        user=given.user,
        data_tags=list(given.sla.training_configuration.data_tags),
        repo_sources=dict(settings.repo_sources),
        git_timeout=settings.git_timeout,
        heartbeat_interval=settings.heartbeat_interval,
        progress_interval=settings.build_progress_interval,
        build_timeout=settings.build_timeout,
        mlflow_tracking=settings.mlflow_tracking,
    )
    return [Want(BUILDER, config)]


AFTER_TRAINING = "model_image"  # the first post-training stage, where a pipeline has it


def training(given: StageInput) -> list[Want]:
    """The aggregator(s) and ``min_available_clients`` learners (per cluster if hierarchical).

    Hierarchical mode: one cluster aggregator per active cluster of the runtime, placed there
    (``given.clusters``), else ``training_clusters`` of them.
    """
    settings = given.settings
    planned = training_wants(
        given.project_id,
        given.user,
        given.sla,
        read_images_ready(given.outputs["build"]),
        given.clusters or settings.training_clusters,
        settings.training,
        TrackingSettings(
            mlflow_tracking=settings.mlflow_tracking,
            mlflow_tracking_uri=settings.mlflow_tracking_uri,
        ),
    )
    return [Want(kind, config, index, before) for kind, config, index, before in planned]


def hierarchical(given: StageInput) -> bool:
    """Whether the SLA asks for hierarchical training (its services go to clusters)."""
    return given.sla.training_configuration.mode == "hierarchical"


def after_training(given: StageInput) -> str | None:
    """The line that ends the training when no post-training step follows."""
    return NO_POST_TRAINING if not given.sla.post_training_steps else None


def model_image(given: StageInput) -> list[Want]:
    """The trained-model image: one builder for the artifact the training stage saved."""
    settings = given.settings
    config = TrBuilderConfig(
        artifact=trained_artifact(given.outputs),
        registry=settings.registry,
        data_dir=settings.data_dir,
        heartbeat_interval=settings.heartbeat_interval,
        progress_interval=settings.build_progress_interval,
        build_timeout=settings.build_timeout,
    )
    return [Want(TRBUILDER, config)]


def serve(given: StageInput) -> list[Want]:
    """The inference service of the trained-model image; its port is kept under data_dir."""
    settings, ready = given.settings, read_model_image(given.outputs)
    state_dir = Path(settings.data_dir) / "services" / TRMODEL.name_for(given.project_id)
    config = TrModelConfig(
        python=ready.python,
        model_dir=ready.model_dir,
        state_dir=str(state_dir),
        host=settings.inference_host,
        port=settings.inference_port,
        heartbeat_interval=settings.heartbeat_interval,
    )
    return [Want(TRMODEL, config)]


def _asks(step: str) -> Callable[[StageInput], bool]:
    def enters(given: StageInput) -> bool:
        return step in given.sla.post_training_steps

    return enters


def nothing(_given: StageInput) -> list[Want]:
    """A stage without services."""
    return []


STAGES: dict[str, Stage] = {
    # Stages 2-3: resolve the commit, build or reuse the images; ends with their facts
    # (services.builder.facts.ImagesReady), kept as outputs["build"].
    "build": Stage(
        "build",
        build,
        ends_on=IMAGES_READY,
        next="train",
        state=ProjectState.BUILDING,
        undeploys=(BUILDER.name,),
    ),
    # Stages 4-5: the aggregator (hierarchical: the root and its cluster aggregators) and
    # the learners train; ends with the aggregator's Facts(type="trained") after it saved
    # the best model as the artifact. The post-training stages (AFTER_TRAINING) follow
    # where they exist; without them the project is then COMPLETED.
    "train": Stage(
        "train",
        training,
        ends_on=TRAINED,
        next=AFTER_TRAINING,
        state=ProjectState.TRAINING,
        undeploys=(AGGREGATOR.name, CLUSTER.name, LEARNER.name),
        closing=after_training,
        places=hierarchical,
    ),
}
# The post-training stages, entered from the training stage ("train" ends with `trained`
# data: services.trmodel.facts). The serve stage's end leaves its service running: the
# project is COMPLETED with trmodel RUNNING until `flops stop` or `delete`.
POST_TRAINING: dict[str, Stage] = {
    "model_image": Stage(
        "model_image",
        model_image,
        ends_on=MODEL_IMAGE_READY,
        next="serve",
        state=ProjectState.BUILDING_MODEL_IMAGE,
        enters=_asks("build_image_for_trained_model"),
        undeploys=(TRBUILDER.name,),
    ),
    "serve": Stage(
        "serve",
        serve,
        ends_on=INFERENCE_READY,
        state=ProjectState.DEPLOYING_MODEL,
        enters=_asks("deploy_trained_model_image"),
        refreshed=True,  # flops status shows the URL the service answers at now
    ),
}
STAGES.update(POST_TRAINING)
PIPELINE = Pipeline("build", STAGES)
# Where a project rests after its build on a stack set to build only ([stack] stages =
# "build"): it deploys nothing and never ends.
RESTING_AFTER_BUILD = Stage("images_ready", nothing, ends_on=None, state=ProjectState.IMAGES_READY)
BUILD_ONLY = Pipeline(
    "build",
    {
        "build": replace(STAGES["build"], next="images_ready"),
        "images_ready": RESTING_AFTER_BUILD,
    },
)
PIPELINES: dict[str, Pipeline] = {"all": PIPELINE, "build": BUILD_ONLY}  # [stack] stages

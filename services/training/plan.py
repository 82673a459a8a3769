"""What the train stage deploys: the configs of the aggregator(s) and the learners.

Classic mode: one aggregator ``aggr<h>`` and ``min_available_clients`` learners
``flearner<h>-<i>``. Hierarchical mode: the root aggregator ``aggr<h>``, one cluster
aggregator ``caggr<h>-<k>`` per cluster and ``min_available_clients`` learners per cluster.
The clusters are a count (the ``[stack] training_clusters`` setting, default 2: groups
``c0``, ``c1``, ...) or the names of an orchestrator's active clusters (Oakestra): then each
group is named after its cluster, and its aggregator and learners are placed in it
(``placement``, ``services.spec.PLACEMENT``). Every learner gets a disjoint share of
the SLA's ``data_tags`` on this node (``nodedata.assign_tags``); a learner without data
fails the project with the original's text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.errors import ConfigError
from nodedata.assign import assign_tags
from protocol.topics import TopicError, check_level
from services.aggregator.cluster import ClusterConfig
from services.aggregator.service import AggregatorConfig, ArtifactPlan
from services.builder.facts import ImageRef, ImagesReady
from services.kinds import AGGREGATOR, CLUSTER, LEARNER, ServiceKind
from services.learner.service import DataSpec, LearnerConfig
from services.tracking.client import TrackingSettings
from services.training.settings import RoundPlan, TrainingSettings
from services.training.worker import WorkerSpec
from services.trmodel.artifact import Environment, Repository, models_dir
from slas import ProjectSLA

START = "Start handling FL training processes"
NO_POST_TRAINING = "No further post training steps requested."
Planned = tuple[ServiceKind[Any], BaseModel, int | None, tuple[str, ...]]


def checkpoint_dir(data_dir: Path, project_id: str) -> Path:
    """Where a project's aggregators keep their checkpoints."""
    return data_dir / "training" / project_id


def _python_version(image: ImageRef) -> str:
    try:
        manifest = json.loads((Path(image.path) / "manifest.json").read_text())
    except (OSError, ValueError):
        return ""
    return str(manifest.get("python", ""))


def _learners(
    project_id: str,
    user: str,
    sla: ProjectSLA,
    ready: ImagesReady,
    groups: list[str],
    settings: TrainingSettings,
    placements: Sequence[str | None],
) -> list[Planned]:
    """``min_available_clients`` learners per group, each on its own share of the data."""
    per_group = sla.training_configuration.min_available_clients
    tags = list(sla.training_configuration.data_tags)
    data_dir = Path(ready.data_dir)
    count = per_group * len(groups)
    worker = WorkerSpec(python=ready.learner.python, repo=Path(ready.repo_path))
    planned: list[Planned] = []
    for index in range(count):
        slices = [asdict(s) for s in assign_tags(data_dir, tags, index, count)]
        config = LearnerConfig(
            user=user,
            project_id=project_id,
            name=LEARNER.name_for(project_id, index),
            group=groups[index // per_group],
            placement=placements[index // per_group],
            worker=worker,
            data=DataSpec(dir=data_dir, tags=tags, slices=slices),
            settings=settings,
        )
        before = ("Preparing new FL Learners.",) if index == 0 and sla.verbose else ()
        planned.append((LEARNER, config, index, before))
    return planned


def training_wants(
    project_id: str,
    user: str,
    sla: ProjectSLA,
    ready: ImagesReady,
    clusters: int | Sequence[str],
    settings: TrainingSettings,
    tracking: TrackingSettings = TrackingSettings(),  # noqa: B008 - never mutated
) -> list[Planned]:
    """The services of the train stage, in the order they are deployed.

    ``clusters``: hierarchical mode's clusters, a count or the names of the clusters to
    place them in (module docstring). ``settings`` (the stack's ``training`` settings) go to
    every actor in its config.
    """
    plan = RoundPlan.from_sla(sla.training_configuration)
    hierarchical = plan.mode == "hierarchical"
    groups, placements = cluster_groups(clusters) if hierarchical else (["root"], [None])
    data_dir = Path(ready.data_dir)
    artifact = ArtifactPlan(
        root=models_dir(data_dir),
        repository=Repository(url=ready.repo_url, commit=ready.commit),
        environment=Environment(
            image=ready.aggregator.name,
            digest=ready.aggregator.digest,
            python=_python_version(ready.aggregator),
        ),
        data_tags=list(sla.training_configuration.data_tags),
        lock_file=Path(ready.aggregator.path) / "lock.txt",
    )
    aggregator = AggregatorConfig(
        user=user,
        project_id=project_id,
        name=AGGREGATOR.name_for(project_id),
        level="root" if hierarchical else "classic",
        plan=plan,
        worker=WorkerSpec(python=ready.aggregator.python, repo=Path(ready.repo_path)),
        checkpoint_dir=checkpoint_dir(data_dir, project_id),
        artifact=artifact,
        flavor=sla.ml_model_flavor,
        expected=len(groups) if hierarchical else plan.min_available,
        tracking=tracking,
        data_dir=data_dir,
        settings=settings,
    )
    first = (START, "Preparing new FL Aggregator.") if sla.verbose else (START,)
    planned: list[Planned] = [(AGGREGATOR, aggregator, None, first)]
    if hierarchical:
        for k, group in enumerate(groups):
            cluster = ClusterConfig(
                user=user,
                project_id=project_id,
                name=CLUSTER.name_for(project_id, k),
                cluster=group,
                placement=placements[k],
                plan=plan,
                expected=plan.min_available,
                settings=settings,
            )
            planned.append((CLUSTER, cluster, k, ()))
    return planned + _learners(project_id, user, sla, ready, groups, settings, placements)


def cluster_groups(clusters: int | Sequence[str]) -> tuple[list[str], list[str | None]]:
    """The training groups of hierarchical mode and where each is placed.

    A count ``n`` gives ``c0`` .. ``c<n-1>``, placed nowhere in particular; names give one
    group per distinct name, named and placed after it. ``ConfigError`` for no cluster or a
    name that cannot be a topic level.
    """
    if isinstance(clusters, int):
        if clusters < 1:
            raise ConfigError(f"hierarchical training needs at least one cluster, got {clusters}")
        return [f"c{k}" for k in range(clusters)], [None] * clusters
    names = list(dict.fromkeys(clusters))
    if not names:
        raise ConfigError("hierarchical training needs at least one cluster, got none")
    for name in names:
        if name == "root":
            raise ConfigError("cluster 'root' cannot name a training group: the root's own")
        try:
            check_level(name, "cluster")
        except TopicError as exc:
            raise ConfigError(f"{exc}: it cannot name a training group") from exc
    return names, list(names)

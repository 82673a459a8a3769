"""THE table of service kinds: what varies from one kind of service to another.

Every place that treats kinds differently reads it here: the manager (names, which app a
service lives in, liveness), the runtimes (how to run it, its container image and
resources, whether a failed one starts again), ``flops service run``. Adding a kind is an
entry in ``KINDS`` plus its package with a config model and an entry coroutine::

    KINDS["toy"] = ServiceKind("toy", "toy", ToyConfig, run_toy, one_shot=True, label="Toy")

An entry coroutine gets a ``ServiceContext`` and reports through ``ctx.emit``. A one-shot
service's entry returns when its job is done (COMPLETED) or raises a ``FlopsError`` after
telling its project why (FAILED); a long-lived one's runs until it is cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core import ids
from core.errors import ConfigError
from services.aggregator.cluster import ClusterConfig
from services.aggregator.service import AggregatorConfig
from services.builder.service import BuilderConfig, run_builder_in
from services.context import ServiceContext
from services.learner.service import LearnerConfig
from services.training.entries import aggregator_entry, cluster_entry, learner_entry
from services.trmodel.entries import (
    TrBuilderConfig,
    TrModelConfig,
    run_trbuilder_in,
    run_trmodel_in,
)

C = TypeVar("C", bound=BaseModel)
Entry = Callable[[ServiceContext[C]], Awaitable[None]]


class Resources(BaseModel):
    """What one service asks an orchestrator for; memory and storage in MB."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    memory: int = Field(ge=1)
    vcpus: int = Field(ge=1)
    storage: int = Field(ge=0)


SMALL = Resources(memory=200, vcpus=1, storage=0)


class ObserverConfig(BaseModel):
    """The observer takes no configuration."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ServiceKind(Generic[C]):
    """One kind of service; see the module docstring.

    ``entry`` is ``None`` for the observer only: runtimes host it themselves (the stack's
    observer host, or ``services.observer.process`` in a process of its own).
    """

    name: str  # the kind, as specs and the FLOPS_SERVICE_KIND variable name it
    prefix: str  # names are <prefix><12 hex of the project id>[-<index>]
    config: type[C]  # validated before a runtime starts it
    entry: Entry[C] | None
    one_shot: bool  # ends by itself (COMPLETED), or runs until it is undeployed
    label: str = ""  # in "New <label> service created & deployed"
    in_observatory: bool = False  # lives in the user's observatory app, not the project's
    watched: bool = True  # liveness: it must report within the stack's service deadline
    restart_failed: bool = False  # the process runtime starts a failed one again
    # It trains over its own MQTT client: in the secure mode its runtime gives it the
    # project's actor account (broker.accounts), not the services' identity.
    trains: bool = False
    fails_project: bool = True  # its failure fails its project (a learner's: the aggregator judges)
    image: str = ""  # its container image where none is configured ("": must be configured)
    resources: Resources = SMALL

    def name_for(self, project_id: str, index: int | None = None) -> str:
        """The service's name in a project, e.g. ``builder8266202cd6db`` or ``learner…-2``."""
        name = self.prefix + ids.short_hash(project_id)
        return name if index is None else f"{name}-{index}"

    def validated(self, config: dict[str, Any]) -> C:
        """``config`` as this kind's config model; ``ConfigError`` names what is wrong."""
        try:
            return self.config.model_validate(config)
        except ValueError as exc:
            raise ConfigError(f"not a {self.name} configuration: {exc}") from exc


OBSERVER: ServiceKind[ObserverConfig] = ServiceKind(
    "observer",
    "observ",
    ObserverConfig,
    None,
    one_shot=False,
    label="Observer",
    in_observatory=True,
    watched=False,  # it reports the others; the process runtime restarts it instead
    restart_failed=True,
)
BUILDER: ServiceKind[BuilderConfig] = ServiceKind(
    "builder",
    "builder",
    BuilderConfig,
    run_builder_in,
    one_shot=True,
    label="Builder",
    resources=Resources(memory=2000, vcpus=1, storage=15000),
)

# The training actors (services.training.entries): one-shot, they end with the training.
AGGREGATOR: ServiceKind[AggregatorConfig] = ServiceKind(
    "aggregator",
    "aggr",
    AggregatorConfig,
    aggregator_entry,
    one_shot=True,
    label="Aggregator",
    trains=True,
)
CLUSTER: ServiceKind[ClusterConfig] = ServiceKind(
    "cluster_aggregator",
    "caggr",
    ClusterConfig,
    cluster_entry,
    one_shot=True,
    label="Cluster Aggregator",
    trains=True,
)
LEARNER: ServiceKind[LearnerConfig] = ServiceKind(
    "learner",
    "flearner",
    LearnerConfig,
    learner_entry,
    one_shot=True,
    label="FL Learners",
    trains=True,
    # The round goes on without it while enough learners are left: the aggregator decides,
    # with a WARNING naming it, or fails the project naming it. No data fails it directly.
    fails_project=False,
)

TRBUILDER: ServiceKind[TrBuilderConfig] = ServiceKind(
    "trbuilder",
    "trbuilder",
    TrBuilderConfig,
    run_trbuilder_in,
    one_shot=True,
    label="Trained Model Image Builder",
    resources=Resources(memory=2000, vcpus=1, storage=5000),
)
TRMODEL: ServiceKind[TrModelConfig] = ServiceKind(
    "trmodel",
    "trmodel",
    TrModelConfig,
    run_trmodel_in,
    one_shot=False,  # serves until `flops stop` or `delete` undeploys it
    label="Trained Model",
    resources=Resources(memory=1000, vcpus=1, storage=0),
)

KINDS: dict[str, ServiceKind[Any]] = {
    kind.name: kind
    for kind in (OBSERVER, BUILDER, AGGREGATOR, CLUSTER, LEARNER, TRBUILDER, TRMODEL)
}


def kind_of(name: str) -> ServiceKind[Any]:
    """The kind called ``name``; ``ConfigError`` for a kind nobody defined."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"no service kind {name!r}; known: {', '.join(sorted(KINDS))}") from None

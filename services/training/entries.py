"""The training actors as services of a project: the entries of ``services.kinds``.

Each entry calls its library (``run_aggregator``, ``run_cluster_aggregator``,
``run_learner``) with the broker the context names (``ServiceContext.broker``: the stack's
own wiring in the local runtime, ``flops service run``'s in a process) and an emit that turns
the library's typed data into ``Event.data``:

- a classic round (``RoundData``, level ``classic``) -> ``RoundMetrics``;
- a hierarchical round -> ``Facts(type="root_round" | "cluster_round")`` with its fields;
- the aggregator's saved model (``BestData``) -> ``Facts(type="trained")``, which ends the
  train stage (``manager.pipeline``), values ``artifact``, ``run_id``, ``round``,
  ``accuracy``, ``loss``, ``rounds``.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from core.errors import ConfigError
from protocol.events import BestRound, Event, EventData, Facts, RoundMetrics, event_id
from services.aggregator.cluster import ClusterConfig, run_cluster_aggregator
from services.aggregator.service import AggregatorConfig, run_aggregator
from services.builder.service import beating
from services.context import Emit, ServiceContext
from services.learner.service import LearnerConfig, run_learner
from services.training.bus import BrokerTarget
from services.training.messages import BestData, RoundData
from services.training.messages import EventData as TrainingData
from services.training.report import Emit as TrainingEmit

BEAT = 10.0  # seconds between the actors' signs of life to the stack
TRAINED = "trained"  # the data type of the event that ends the train stage


def event_data(data: TrainingData) -> EventData:
    """The library's typed data as an event's data; see the module docstring."""
    if isinstance(data, BestData):
        values: dict[str, JsonValue] = {
            "artifact": data.model_dir,
            "run_id": data.run_id,
            "round": data.round,
            "accuracy": data.accuracy,
            "loss": data.loss,
            "rounds": data.rounds,
        }
        return Facts(type=TRAINED, values=values)
    if data.level == "classic" and data.learners >= 1 and 0 <= data.accuracy <= 1:
        return RoundMetrics(
            round=data.round,
            loss=data.loss,
            accuracy=data.accuracy,
            examples=data.examples,
            learners=data.learners,
            seconds=data.seconds,
            best=None
            if data.best is None
            else BestRound(**data.best.model_dump(exclude={"cycle"})),
        )
    return Facts(type=f"{data.level}_round", values=data.model_dump(mode="json"))


def _best(data: RoundData) -> BestRound | None:
    best = data.best
    return (
        None
        if best is None
        else BestRound(round=best.round, loss=best.loss, accuracy=best.accuracy)
    )


def adapt(emit: Emit) -> TrainingEmit:
    """The library's ``emit(event, data)`` over a service's ``emit(event)``."""

    async def send(event: Event, data: TrainingData | RoundData | None = None, /) -> None:
        if data is not None:
            event = event.model_copy(update={"data": event_data(data)})
        await emit(event)

    return send


def target(ctx: ServiceContext[Any]) -> BrokerTarget:
    """The broker the service's actors connect to."""
    if ctx.broker is None:
        raise ConfigError(f"{ctx.spec.name}: its runtime gave it no broker to train over")
    return BrokerTarget(ctx.broker.link_address, ctx.broker.credentials)


async def aggregator_entry(ctx: ServiceContext[AggregatorConfig]) -> None:
    """The aggregator (classic, or the hierarchical root): train, save, report."""
    async with beating(ctx.beat, BEAT):
        await run_aggregator(ctx.config, target(ctx), adapt(ctx.emit))


async def cluster_entry(ctx: ServiceContext[ClusterConfig]) -> None:
    """A cluster aggregator of hierarchical mode."""
    async with beating(ctx.beat, BEAT):
        await run_cluster_aggregator(ctx.config, target(ctx), adapt(ctx.emit))


async def learner_entry(ctx: ServiceContext[LearnerConfig]) -> None:
    """A learner: fit and evaluate on its own share of the data until the training ends.

    It first says which share it has (``Facts(type="learner_data")``: its slices and rows),
    so the log shows that no two learners of the project share a row.
    """
    data = ctx.config.data
    if data.slices:
        rows = sum(int(s["stop"]) - int(s["start"]) for s in data.slices)
        values: dict[str, JsonValue] = {"learner": ctx.config.name, "rows": rows}
        values["slices"] = [dict(s) for s in data.slices]
        await ctx.emit(
            Event(
                event_id=event_id(ctx.spec.id, "data"),
                project_id=ctx.config.project_id,
                source=ctx.config.name,
                text=f"{ctx.config.name}: {rows} rows of {data.tags}, {len(data.slices)} slice(s)",
                data=Facts(type="learner_data", values=values),
            )
        )
    async with beating(ctx.beat, BEAT):
        await run_learner(ctx.config, target(ctx), adapt(ctx.emit))

"""The cluster aggregator of hierarchical mode: a learner of the root, an aggregator of its own.

Towards the root it is a member of the root's group: a ``fit`` task of cycle ``c`` runs
``rounds`` FedAvg rounds with its own learners, starting from the root's parameters, and
answers with the cluster's parameters and the last round's example count; an ``evaluate``
task evaluates the root's parameters on its learners. Each of its rounds is a round event
(level ``cluster``). It has no worker: the root's worker holds the user's model.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

from core.errors import FlopsError
from services.training import bus
from services.training.coordinator import Coordinator, fedavg_round, metrics_of
from services.training.fedavg import Arrays
from services.training.member import Answer, Member
from services.training.messages import Presence, RoundData, Task
from services.training.report import Emit, Reporter
from services.training.router import Router, run_beside
from services.training.settings import RoundPlan, TrainingSettings
from services.training.topics import Group


class ClusterConfig(BaseModel):
    """What the stage hands a cluster aggregator."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str
    project_id: str
    name: str  # the service name: the events' source and its name towards the root
    cluster: str  # its own group, e.g. "c0": its learners' ``group``
    placement: str | None = None  # the orchestrator's cluster it runs in (services.spec)
    parent: str = "root"
    plan: RoundPlan  # rounds = training_rounds, cycles, and the per-cluster client minimums
    expected: int | None = None  # learners deployed in this cluster
    settings: TrainingSettings = TrainingSettings()


async def run_cluster_aggregator(
    config: ClusterConfig, broker: bus.BrokerTarget, emit: Emit
) -> int:
    """Serve the root until it says done; the number of root tasks answered."""
    report = Reporter(emit, config.project_id, config.name)
    run = uuid.uuid4().hex[:16]
    parent = Group(config.user, config.project_id, config.parent)
    own = Group(config.user, config.project_id, config.cluster)
    leave = Presence(kind="leave", sender=config.name, run=run, reason="its connection was lost")
    async with bus.connect(
        broker, f"{config.name}-{run[:8]}", config.settings, (parent.learners, leave)
    ) as link:
        coordinator = Coordinator(
            link, own, config.name, run, config.settings, report, "learner", config.expected
        )
        plan = config.plan

        async def handle(task: Task, parameters: Arrays) -> Answer:
            cycle = task.cycle or task.round
            if task.op == "evaluate":
                results = await coordinator.run_task(
                    "evaluate", plan.rounds, parameters, plan.min_evaluate, cycle=cycle
                )
                metrics = metrics_of(results)
                return Answer(metrics.examples, [], metrics.loss, metrics.accuracy)
            examples = 0
            for number in range(1, plan.rounds + 1):
                done = await fedavg_round(
                    coordinator, number, parameters, plan.min_fit, plan.min_evaluate, cycle
                )
                parameters, examples = done.parameters, done.examples
                data = RoundData(
                    round=number,
                    rounds=plan.rounds,
                    loss=done.metrics.loss,
                    accuracy=done.metrics.accuracy,
                    examples=examples,
                    learners=done.learners,
                    seconds=done.seconds,
                    level="cluster",
                    group=config.cluster,
                    cycle=cycle,
                    cycles=plan.cycles,
                )
                await report.say(data.text(), key=f"{task.task_id}-{number}", data=data)
            return Answer(examples, parameters)

        member = Member(link, parent, config.name, run, config.settings, handle)
        router = Router()
        coordinator.routes(router)
        member.routes(router)
        await link.subscribe(own.learners, own.results, parent.tasks, parent.aggregator)
        await coordinator.start()
        try:
            answered = await run_beside(
                member.serve(), router.pump(link), member.beat(), coordinator.watch()
            )
        except FlopsError as exc:
            await report.error(f"Cluster aggregator {config.cluster} failed: {exc}")
            await coordinator.finish(f"the cluster aggregator failed: {exc}")
            raise
        await coordinator.finish()
        await member.leave("training finished")
        return answered

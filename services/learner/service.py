"""The learner: the user's ModelManager on this learner's data, fit and evaluate on request.

It connects first (so even a learner that cannot start tells the aggregator why, as its
``leave``), starts its worker with the data variables, calls ``set_model_data`` once, joins
its group and answers tasks until the aggregator says the training is done. An exception
in user code becomes an ERROR event with its message and the file and line in the
repository; the learner then leaves with that reason and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.errors import FlopsError
from flops_utils._contract import DATA_DIR_VAR, DATA_SLICES_VAR, DATA_TAGS_VAR
from services.training import bus
from services.training.errors import NoDataError, TrainingError, UserCodeError
from services.training.fedavg import Arrays
from services.training.member import Answer, Member
from services.training.messages import Presence, Task
from services.training.report import Emit, Reporter
from services.training.router import Router, run_beside
from services.training.settings import TrainingSettings
from services.training.topics import Group
from services.training.worker import Worker, WorkerSpec

# The environment variables through which flops_utils.load_dataset finds this learner's
# share of the data (flops_utils/_contract.py documents them).
DATA_DIR, DATA_TAGS, DATA_SLICES = DATA_DIR_VAR, DATA_TAGS_VAR, DATA_SLICES_VAR


class DataSpec(BaseModel):
    """The data of one learner: the node's data dir, the SLA's tags, its own slices."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dir: Path
    tags: list[str]
    slices: list[dict[str, Any]]  # nodedata.assign's slices as dicts (tag, file, start, stop)

    def env(self) -> dict[str, str]:
        """The worker's data variables."""
        return {
            DATA_DIR: str(self.dir),
            DATA_TAGS: json.dumps(self.tags),
            DATA_SLICES: json.dumps(self.slices),
        }


def no_data_text(tags: list[str]) -> str:
    """The original's text for a learner without data."""
    return f"No matching data found for provided data tags '{tags}'"


class LearnerConfig(BaseModel):
    """What the stage hands a learner."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str
    project_id: str
    name: str  # the service (instance) name: the events' source and the presence name
    group: str = "root"  # the aggregator's group: "root", or a cluster's name
    placement: str | None = None  # the orchestrator's cluster it runs in (services.spec)
    worker: WorkerSpec
    data: DataSpec
    settings: TrainingSettings = TrainingSettings()


async def run_learner(config: LearnerConfig, broker: bus.BrokerTarget, emit: Emit) -> int:
    """Learn until the training is done; the number of tasks answered."""
    report = Reporter(emit, config.project_id, config.name)
    run = uuid.uuid4().hex[:16]
    group = Group(config.user, config.project_id, config.group)
    leave = Presence(kind="leave", sender=config.name, run=run, reason="its connection was lost")
    async with bus.connect(
        broker, f"{config.name}-{run[:8]}", config.settings, (group.learners, leave)
    ) as link:
        await link.subscribe(group.tasks, group.aggregator)
        member = Member(link, group, config.name, run, config.settings, _not_ready)
        try:
            return await _learn(config, link, member)
        except FlopsError as exc:
            # No data fails the project; any other failure is the aggregator's to judge.
            fail = isinstance(exc, NoDataError)
            await report.error(str(exc) if fail else f"Learner failed: {exc}", fail=fail)
            gone = leave.model_copy(update={"reason": str(exc)[:2000]})
            await link.send_json(group.learners, gone)
            if not member.heard_aggregator:
                await _linger(link, group, config.settings.join_timeout)
                await link.send_json(group.learners, gone)
            raise


async def _not_ready(task: Task, parameters: Arrays) -> Answer:
    raise TrainingError("the learner is not ready")


async def _linger(link: bus.Bus, group: Group, timeout: float) -> None:
    """Wait for a sign of the aggregator (at most ``timeout``), so it hears why we leave.

    A learner can fail before the aggregator subscribed; once the aggregator beats, it
    hears the leave sent again after this.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            async for topic, _ in link.receive():
                if topic == group.aggregator:
                    return


async def _learn(config: LearnerConfig, link: bus.Bus, member: Member) -> int:
    if not config.data.slices:
        raise NoDataError(no_data_text(config.data.tags))
    spec = config.worker.model_copy(update={"env": {**config.worker.env, **config.data.env()}})
    async with Worker.start(spec, config.settings) as worker:
        try:
            await worker.set_model_data()
        except UserCodeError as exc:
            if "No matching data found" in exc.where.message:
                raise NoDataError(no_data_text(config.data.tags)) from exc
            raise

        async def handle(task: Task, parameters: Arrays) -> Answer:
            if task.op == "fit":
                fitted, examples = await worker.fit(parameters)
                return Answer(examples, fitted)
            evaluation = await worker.evaluate(parameters)
            return Answer(evaluation.examples, [], evaluation.loss, evaluation.accuracy)

        member.handle = handle
        router = Router()
        member.routes(router)
        answered = await run_beside(member.serve(), router.pump(link), member.beat())
        await member.leave("training finished")
        return answered

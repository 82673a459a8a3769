"""The aggregator: FedAvg rounds over the project's training topics, checkpointed.

Its worker (the user's ModelManager in the environment's Python, never given data) gives
the initial parameters and saves the best model at the end. Each round: the global
parameters out, ``fit`` on at least ``min_fit`` learners, the weighted mean by example
counts, then ``evaluate`` of that aggregated model on at least ``min_evaluate`` learners,
a round event, the best-model rule, and a checkpoint. A restarted aggregator resumes after
the last checkpointed round. In hierarchical mode the root aggregator runs the same loop
over cluster aggregators, one round per cycle. With MLflow tracking on, each round and the
saved model are also logged to MLflow beside the training (``services.tracking.session``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from core.errors import FlopsError
from services.tracking.client import TrackingSettings
from services.tracking.session import Track, tracking_beside
from services.training import bus, checkpoint
from services.training.best import Best, is_better
from services.training.coordinator import Coordinator, fedavg_round
from services.training.fedavg import Arrays
from services.training.messages import BestData, Presence, RoundData
from services.training.report import Emit, Reporter
from services.training.router import Router, run_beside
from services.training.settings import RoundPlan, TrainingSettings
from services.training.topics import Group
from services.training.worker import Worker, WorkerSpec
from services.trmodel.artifact import Artifact, ArtifactMeta, Environment, Repository, save_artifact
from services.trmodel.errors import ArtifactError

COMPLETED = "Aggregator tasks completed successfully."


class ArtifactPlan(BaseModel):
    """Where the best model goes (``services.trmodel.artifact``) and what its manifest says."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    root: Path  # services.trmodel.artifact.models_dir(data_dir): the artifact is root/<project>
    repository: Repository
    environment: Environment
    data_tags: list[str] = []
    lock_file: Path | None = None  # the environment's lock: copied into the artifact


def _lock_text(plan: ArtifactPlan) -> str:
    try:
        return plan.lock_file.read_text() if plan.lock_file else ""
    except OSError:
        return ""  # an image without its lock file: the manifest says so (no lock_sha256)


class AggregatorConfig(BaseModel):
    """What the stage hands an aggregator (classic, or the hierarchical root)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: str
    project_id: str
    name: str  # the service name: the events' source and the presence name
    level: Literal["classic", "root"] = "classic"
    plan: RoundPlan
    worker: WorkerSpec
    checkpoint_dir: Path
    artifact: ArtifactPlan
    flavor: str = "sklearn"
    expected: int | None = None  # learners (root: clusters) deployed, to fail fast
    settings: TrainingSettings = TrainingSettings()
    # MLflow tracking (off by default): the store is under data_dir unless a URI is set
    tracking: TrackingSettings = TrackingSettings()
    data_dir: Path = Path()  # the node's data dir


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a finished training."""

    best: Best
    rounds: int
    history: list[RoundData]
    artifact: Artifact


async def run_aggregator(config: AggregatorConfig, broker: bus.BrokerTarget, emit: Emit) -> Outcome:
    """Run the training to its end; on failure report it (project FAILED) and raise."""
    report = Reporter(emit, config.project_id, config.name)
    try:
        return await _run(config, broker, report)
    except FlopsError as exc:
        await report.error(
            f"Aggregator failed: '{exc}'. Terminating this FLOps Project.", fail=True
        )
        raise


def _totals(config: AggregatorConfig) -> tuple[int, int, int, int]:
    """(rounds, min available, min fit, min evaluate) at this aggregator's level."""
    plan = config.plan
    if config.level == "root":  # the root's learners are the clusters: all join, one is enough
        return plan.cycles, config.expected or 1, 1, 1
    return plan.rounds, plan.min_available, plan.min_fit, plan.min_evaluate


async def _run(config: AggregatorConfig, broker: bus.BrokerTarget, report: Reporter) -> Outcome:
    python = Path(config.worker.python)
    async with Worker.start(config.worker, config.settings) as worker:
        async with tracking_beside(
            python, config.project_id, config.data_dir, config.tracking, report.warning
        ) as track:
            saved, artifact = await _train_and_save(config, broker, report, worker, track)
        # Tracked before the final lines: the last one ends the stage, which stops this service.
        state = saved.state
        state.finished = True
        checkpoint.save(config.checkpoint_dir, saved)
        await _final_lines(report, state, artifact)  # before the worker's exit (~0.3 s)
    assert state.best is not None  # noqa: S101 - _train_and_save saved the best
    return Outcome(state.best, state.completed, state.history, artifact)


async def _train_and_save(
    config: AggregatorConfig,
    broker: bus.BrokerTarget,
    report: Reporter,
    worker: Worker,
    track: Track,
) -> tuple[checkpoint.Checkpoint, Artifact]:
    """Train the rounds left (after a checkpoint's), then save the best model."""
    settings = config.settings
    rounds = _totals(config)[0]
    initial = await worker.get_parameters()
    saved = checkpoint.load(config.checkpoint_dir, settings.max_model_bytes)
    if saved is None:
        saved = checkpoint.Checkpoint(
            state=checkpoint.State(total=rounds),
            global_parameters=initial,
            best_parameters=[],
        )
    elif saved.state.total != rounds:
        raise FlopsError(
            f"the checkpoint in {config.checkpoint_dir} is of {saved.state.total} rounds, "
            f"this training has {rounds}"
        )
    if saved.state.completed < rounds:
        await _train(config, broker, report, saved, track)
    state = saved.state
    if state.best is None:
        raise FlopsError("no round was completed")
    best, parameters = state.best, saved.best_parameters

    async def save(path: Path, flavor: str) -> dict[str, Any]:
        return await worker.save_model(path, flavor, parameters)

    plan = config.artifact
    meta = ArtifactMeta(
        project_id=config.project_id,
        customer=config.user,
        repository=plan.repository,
        flavor=config.flavor,
        round=best.round,
        rounds=state.completed,
        metrics={"accuracy": best.accuracy, "loss": best.loss},
        data_tags=plan.data_tags,
        environment=plan.environment,
        lock_text=_lock_text(plan),
    )
    try:
        artifact = await save_artifact(plan.root, meta, save)
    except ArtifactError as exc:
        raise FlopsError(f"the best model could not be saved: {exc}") from exc
    track.model(best.round, artifact.path)
    return saved, artifact


async def _train(
    config: AggregatorConfig,
    broker: bus.BrokerTarget,
    report: Reporter,
    saved: checkpoint.Checkpoint,
    track: Track,
) -> None:
    run = uuid.uuid4().hex[:16]
    group = Group(config.user, config.project_id, "root")
    leave = Presence(kind="leave", sender=config.name, run=run, reason="its connection was lost")
    async with bus.connect(
        broker, f"{config.name}-{run[:8]}", config.settings, (group.aggregator, leave)
    ) as link:
        label = "cluster" if config.level == "root" else "learner"
        coordinator = Coordinator(
            link, group, config.name, run, config.settings, report, label, config.expected
        )
        router = Router()
        coordinator.routes(router)
        await link.subscribe(group.learners, group.results)
        await coordinator.start()
        await run_beside(
            _rounds(config, coordinator, report, saved, track),
            router.pump(link),
            coordinator.watch(),
        )


async def _rounds(
    config: AggregatorConfig,
    coordinator: Coordinator,
    report: Reporter,
    saved: checkpoint.Checkpoint,
    track: Track,
) -> None:
    rounds, available, min_fit, min_evaluate = _totals(config)
    state = saved.state
    if state.completed:
        await report.say(f"Resuming from the checkpoint of round {state.completed}/{rounds}")
        last = state.history[-1]
        await report.say(last.text(), key=f"round-{last.round}", data=last)  # a repeat: same id
    else:
        what = "cycles" if config.level == "root" else "rounds"
        await report.say(
            "Start Aggregator activities - Start Federated Learning: "
            f"{rounds} {what}, at least {available} {coordinator.label}s",
            key="start",
        )
    await coordinator.wait_for(available, "the training")
    for number in range(state.completed + 1, rounds + 1):
        cycle = number if config.level == "root" else None
        done = await fedavg_round(
            coordinator, number, saved.global_parameters, min_fit, min_evaluate, cycle
        )
        data = RoundData(
            round=number,
            rounds=rounds,
            loss=done.metrics.loss,
            accuracy=done.metrics.accuracy,
            examples=done.examples,
            learners=done.learners,
            seconds=done.seconds,
            level=config.level,
        )
        _record(saved, data, done.parameters)
        checkpoint.save(config.checkpoint_dir, saved)
        await report.say(data.text(), key=f"round-{number}", data=data)
        track.round(number, {"loss": data.loss, "accuracy": data.accuracy})
    await coordinator.finish()


def _record(saved: checkpoint.Checkpoint, data: RoundData, parameters: Arrays) -> None:
    """Count a completed round: history, global parameters, and the best so far."""
    state = saved.state
    candidate = Best(round=data.round, loss=data.loss, accuracy=data.accuracy)
    if is_better(candidate, state.best):
        state.best = candidate
        saved.best_parameters = parameters
    state.completed = data.round
    state.history.append(data)
    saved.global_parameters = parameters


async def _final_lines(report: Reporter, state: checkpoint.State, artifact: Artifact) -> None:
    """The original's final lines, then the saved model's event (last: it ends the stage)."""
    best = state.best
    if best is None:
        return
    run_id = artifact.manifest.run_id
    data = BestData(
        round=best.round,
        loss=best.loss,
        accuracy=best.accuracy,
        rounds=state.completed,
        model_dir=str(artifact.path),
        run_id=run_id,
    )
    await report.say(COMPLETED, key="completed")
    await report.say("The best performing model:", key="best")
    await report.say(f"- accuracy: {best.accuracy}", key="best-accuracy")
    await report.say(f"- loss: {best.loss}", key="best-loss")
    await report.say(f"- round: {best.round}", key="best-round")
    await report.say(f"Trained model saved: {artifact.path} (run {run_id})", key="saved", data=data)

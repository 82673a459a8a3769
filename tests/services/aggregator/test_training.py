"""Federated training over a real mosquitto, with real worker processes per actor.

The aggregator and learners run as coroutines of this test (each with its own worker child
process running the test ML repository); where a whole actor must die, it runs as its own
process (``python -m services.learner`` / ``services.aggregator``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocol.events import Level
from protocol.states import ProjectState
from services.aggregator.cluster import ClusterConfig, run_cluster_aggregator
from services.aggregator.service import COMPLETED, AggregatorConfig, run_aggregator
from services.learner.service import LearnerConfig, run_learner
from services.training.bus import BrokerTarget
from services.training.errors import NoDataError, TrainingError, TrainingFailedError
from services.training.messages import BestData, RoundData
from services.training.settings import RoundPlan, TrainingSettings
from tests.conftest import BrokerProcess
from tests.mlrepo import (
    PROJECT,
    USER,
    Digits,
    Events,
    accuracy,
    data_spec,
    fault_line,
    train_examples,
    worker_spec,
    write_digits,
)

pytestmark = pytest.mark.timeout(90)
FAST = TrainingSettings(heartbeat_interval=0.2, learner_timeout=2.0, join_timeout=30.0)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    return write_digits(tmp_path_factory.mktemp("digits"), 3)


def aggregator(tmp: Path, plan: RoundPlan, **extra: object) -> AggregatorConfig:
    return AggregatorConfig.model_validate(
        {
            "user": USER,
            "project_id": PROJECT,
            "name": "aggr0123",
            "plan": plan,
            "worker": worker_spec(),
            "checkpoint_dir": tmp / "checkpoint",
            "model_dir": tmp / "model",
            "settings": FAST,
            **extra,
        }
    )


def learner(
    name: str, digits: Digits, *parts: int, env: dict[str, str] | None = None, group: str = "root"
) -> LearnerConfig:
    return LearnerConfig(
        user=USER,
        project_id=PROJECT,
        name=name,
        group=group,
        worker=worker_spec(env),
        data=data_spec(digits, *parts),
        settings=FAST,
    )


async def test_two_learners_three_rounds_reach_080_on_held_out_digits(
    mosquitto: BrokerProcess, digits: Digits, tmp_path: Path
) -> None:
    broker, events = BrokerTarget(mosquitto.address), Events()
    plan = RoundPlan(rounds=3, min_available=2, min_fit=2, min_evaluate=2)
    config = aggregator(tmp_path, plan, expected=2)
    async with asyncio.TaskGroup() as tasks:
        learners = [
            tasks.create_task(run_learner(learner(f"flearner{i}", digits, i), broker, events))
            for i in range(2)
        ]
        outcome = await run_aggregator(config, broker, events)
    assert [t.result() for t in learners] == [6, 6]  # 3 fits + 3 evaluations each
    rounds = [d for d in events.data() if isinstance(d, RoundData)]
    assert [(r.round, r.rounds, r.learners) for r in rounds] == [(1, 3, 2), (2, 3, 2), (3, 3, 2)]
    assert rounds[-1].accuracy >= 0.8
    # each learner trained on its own partition only
    assert rounds[0].examples == train_examples(digits, 0, 1)
    texts = events.texts()
    assert f"Round 3/3: loss {rounds[-1].loss:.3f}, accuracy {rounds[-1].accuracy:.3f}" in "".join(
        texts
    )
    tail = texts[texts.index(COMPLETED) :]
    assert tail[:2] == [COMPLETED, "The best performing model:"]
    assert tail[2] == f"- accuracy: {outcome.best.accuracy}" and tail[3].startswith("- loss: ")
    assert accuracy(tmp_path / "model" / "parameters.npz", digits) >= 0.8
    assert (tmp_path / "model" / "model.json").exists()
    assert not events.texts(Level.WARNING) and not events.texts(Level.ERROR)


async def test_a_crashed_learner_is_dropped_while_enough_remain(
    mosquitto: BrokerProcess, digits: Digits, tmp_path: Path
) -> None:
    broker, events = BrokerTarget(mosquitto.address), Events()
    plan = RoundPlan(rounds=3, min_available=3, min_fit=2, min_evaluate=2)
    crash = {"TEST_FAULT": "crash:fit:2"}  # its worker is killed in round 2's fit
    configs = [learner("flearner0", digits, 0), learner("flearner1", digits, 1)]
    configs.append(learner("flearner2", digits, 2, env=crash))
    async with asyncio.TaskGroup() as tasks:
        runs = [tasks.create_task(_quietly(run_learner(c, broker, events))) for c in configs]
        outcome = await run_aggregator(aggregator(tmp_path, plan), broker, events)
    assert outcome.rounds == 3
    assert isinstance(runs[2].result(), TrainingError)
    warnings = events.texts(Level.WARNING)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("Learner flearner2 dropped from round 2 (fit): the worker exited")
    assert warnings[0].endswith("continuing with 2 learners")
    rounds = [d for d in events.data() if isinstance(d, RoundData)]
    assert [r.learners for r in rounds] == [3, 2, 2]


async def test_user_code_that_raises_is_reported_with_file_and_line(
    mosquitto: BrokerProcess, digits: Digits, tmp_path: Path
) -> None:
    broker, events = BrokerTarget(mosquitto.address), Events()
    plan = RoundPlan(rounds=2, min_available=1, min_fit=1, min_evaluate=1)
    config = learner("flearner0", digits, 0, env={"TEST_FAULT": "raise:fit:1"})
    async with asyncio.TaskGroup() as tasks:
        run = tasks.create_task(_quietly(run_learner(config, broker, events)))
        with pytest.raises(TrainingFailedError, match="needs 1 learner to fit, 0 answered"):
            await run_aggregator(aggregator(tmp_path, plan), broker, events)
    assert isinstance(run.result(), TrainingError)
    where = (
        "fit_model raised RuntimeError: injected failure in fit call 1 "
        f"(at model_manager.py:{fault_line()})"
    )
    errors = [(e.source, e.text, e.state) for e, _ in events.items if e.level is Level.ERROR]
    assert ("flearner0", f"Learner failed: {where}", None) in errors
    failed = [text for source, text, state in errors if state is ProjectState.FAILED]
    assert len(failed) == 1 and failed[0].startswith("Aggregator failed: 'round 1 needs")
    assert f"flearner0: {where}" in failed[0]


async def test_a_learner_without_data_fails_the_project_with_the_original_text(
    mosquitto: BrokerProcess, digits: Digits, tmp_path: Path
) -> None:
    broker, events = BrokerTarget(mosquitto.address), Events()
    plan = RoundPlan(rounds=1, min_available=1, min_fit=1, min_evaluate=1)
    config = learner("flearner0", digits).model_copy(
        update={"data": data_spec(digits).model_copy(update={"tags": ["nothing"]})}
    )
    async with asyncio.TaskGroup() as tasks:
        run = tasks.create_task(_quietly(run_learner(config, broker, events)))
        with pytest.raises(TrainingFailedError, match="flearner0: No matching data"):
            await run_aggregator(aggregator(tmp_path, plan, expected=1), broker, events)
    assert isinstance(run.result(), NoDataError)
    text = "No matching data found for provided data tags '['nothing']'"
    assert (text, ProjectState.FAILED) in [(e.text, e.state) for e, _ in events.items]


async def test_hierarchical_two_cycles_report_both_levels(
    mosquitto: BrokerProcess, digits: Digits, tmp_path: Path
) -> None:
    broker, events = BrokerTarget(mosquitto.address), Events()
    plan = RoundPlan(mode="hierarchical", rounds=2, cycles=2)
    root = aggregator(tmp_path, plan, level="root", expected=2)
    clusters = [
        ClusterConfig(
            user=USER,
            project_id=PROJECT,
            name=f"caggr{c}",
            cluster=f"c{c}",
            plan=plan,
            expected=1,
            settings=FAST,
        )
        for c in range(2)
    ]
    async with asyncio.TaskGroup() as tasks:
        for c, cluster in enumerate(clusters):
            tasks.create_task(run_cluster_aggregator(cluster, broker, events))
            config = learner(f"flearner{c}", digits, c, group=f"c{c}")
            tasks.create_task(run_learner(config, broker, events))
        outcome = await run_aggregator(root, broker, events)
    rounds = [d for d in events.data() if isinstance(d, RoundData)]
    assert [(r.round, r.rounds) for r in rounds if r.level == "root"] == [(1, 2), (2, 2)]
    cluster_rounds = sorted((r.group, r.cycle, r.round) for r in rounds if r.level == "cluster")
    assert cluster_rounds == [(g, c, n) for g in ("c0", "c1") for c in (1, 2) for n in (1, 2)]
    assert any(t.startswith("Cycle 2/2: loss ") and "(2 clusters," in t for t in events.texts())
    assert any(t.startswith("Cluster c1, cycle 2/2, round 2/2: ") for t in events.texts())
    assert outcome.rounds == 2 and outcome.best.accuracy > 0.5
    assert isinstance(events.data()[-1], BestData)


async def _quietly(run: object) -> object:
    """The actor's result, or the error it ended with."""
    try:
        return await run  # type: ignore[misc]
    except TrainingError as exc:
        return exc

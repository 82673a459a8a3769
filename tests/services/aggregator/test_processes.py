"""Actors as processes (``python -m services.aggregator|learner FILE``) killed with SIGKILL.

A learner process killed mid-round when no other learner can take its place fails the
training, naming it; an aggregator killed in round 2 and started again resumes from its
checkpoint and ends with the same number of rounds, each counted once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.training.settings import RoundPlan
from tests.conftest import ROOT, BrokerProcess
from tests.mlrepo import PROJECT, Digits, accuracy, write_digits
from tests.services.aggregator.test_training import aggregator, learner

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    return write_digits(tmp_path_factory.mktemp("digits"), 2)


class Actor:
    """One actor process; its events are JSON lines on stdout."""

    def __init__(self, folder: Path, role: str, port: int, config: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / f"{config.name}.json"
        section = {"cluster": "cluster"}.get(role, role)
        actor = {"role": role, "broker": {"port": port}, section: config.model_dump(mode="json")}
        self.file.write_text(json.dumps(actor))
        package = "learner" if role == "learner" else "aggregator"
        self.out = (folder / f"{config.name}.out").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{package}", str(self.file)],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its worker dies with it on SIGKILL of the group
        )

    def events(self) -> list[dict[str, Any]]:
        lines = Path(self.out.name).read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def texts(self) -> list[str]:
        return [e["event"]["text"] for e in self.events()]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.out.close()


@pytest.fixture
def actors() -> Iterator[list[Actor]]:
    started: list[Actor] = []
    yield started
    for actor in started:
        actor.stop()


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_killed_learner_fails_the_round_when_too_few_are_left(
    mosquitto: BrokerProcess, digits: Digits, tmp_path: Path, actors: list[Actor]
) -> None:
    plan = RoundPlan(rounds=3, min_available=2, min_fit=2, min_evaluate=2)
    pause = {"TEST_FAULT": "pause:fit:2", "TEST_MARKER": str(tmp_path)}
    port = mosquitto.port
    actors.append(Actor(tmp_path / "a", "aggregator", port, aggregator(tmp_path, plan)))
    actors.append(Actor(tmp_path / "a", "learner", port, learner("flearner0", digits, 0)))
    doomed = Actor(tmp_path / "a", "learner", port, learner("flearner1", digits, 1, env=pause))
    actors.append(doomed)
    wait_for(lambda: any(tmp_path.glob("paused-*")), "flearner1 to be in round 2")
    doomed.kill()  # learner and worker, mid-fit
    assert actors[0].wait() == 1
    failed = [e["event"] for e in actors[0].events() if e["event"].get("state") == "FAILED"]
    assert len(failed) == 1
    assert failed[0]["text"].startswith(
        "Aggregator failed: 'round 2 needs 2 learners to fit, 1 answered; "
        "flearner1: its connection was lost'"
    )


def test_an_aggregator_killed_in_round_2_resumes_and_counts_each_round_once(
    mosquitto: BrokerProcess, digits: Digits, tmp_path: Path, actors: list[Actor]
) -> None:
    plan = RoundPlan(rounds=3, min_available=2, min_fit=2, min_evaluate=2)
    pause = {"TEST_FAULT": "pause:fit:2", "TEST_MARKER": str(tmp_path)}
    port, folder = mosquitto.port, tmp_path / "a"
    config = aggregator(tmp_path, plan)
    first = Actor(folder / "first", "aggregator", port, config)
    actors.append(first)
    for i in range(2):
        actors.append(Actor(folder, "learner", port, learner(f"flearner{i}", digits, i, env=pause)))
    wait_for(lambda: len(list(tmp_path.glob("paused-*"))) == 2, "both learners in round 2")
    first.kill()
    (tmp_path / "release").touch()
    second = Actor(folder / "second", "aggregator", port, config)
    actors.append(second)
    assert second.wait() == 0, second.texts()
    assert [t for t in first.texts() if t.startswith("Round")] == [first.texts()[-1]]
    assert first.texts()[-1].startswith("Round 1/3: ")
    texts = second.texts()
    assert texts[0] == "Resuming from the checkpoint of round 1/3"
    assert texts[1] == first.texts()[-1]  # round 1 again, with the same event id: one log entry
    rounds = [e for e in second.events() if e["data"] and e["data"]["kind"] == "round"]
    ids = [e["event"]["event_id"] for e in rounds]
    first_id = next(e["event"]["event_id"] for e in first.events() if e["data"])
    assert ids[0] == first_id and len(set(ids)) == 3
    assert [e["data"]["round"] for e in rounds] == [1, 2, 3]
    assert "Aggregator tasks completed successfully." in texts
    assert accuracy(tmp_path / "models" / PROJECT, digits) >= 0.8
    for actor in actors[1:3]:
        assert actor.wait() == 0

"""The aggregator side of one group: who is alive, tasks out, results in, failures named.

A ``Coordinator`` knows its learners from their presence messages (join, beat, leave, and
the broker's will when a learner's connection dies) and marks one gone after
``learner_timeout`` of silence. ``run_task`` sends one task with the global parameters to
every live learner and waits for each to answer, fail or go; the task succeeds when at
least ``minimum`` answered, naming each learner lost in a WARNING, and otherwise fails
naming them and why.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from protocol.events import Level
from services.training import wire
from services.training.bus import Bus
from services.training.errors import TrainingFailedError
from services.training.fedavg import Arrays, Evaluation, weighted_evaluation, weighted_mean
from services.training.messages import Op, Presence, Result, Task
from services.training.report import Reporter
from services.training.router import Router
from services.training.settings import TrainingSettings
from services.training.topics import Channel, Group

log = logging.getLogger(__name__)
VERBS = {"fit": "fit", "evaluate": "evaluate", "done": "finish"}


def count(number: int, noun: str) -> str:
    """``1 learner``, ``2 learners``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


@dataclass
class Collection:
    """The answers to one task."""

    task: Task
    pending: set[str]
    results: dict[str, tuple[Result, Arrays]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def deliver(self, result: Result, arrays: Arrays) -> None:
        """A learner's answer (ignored unless it was asked and has not answered)."""
        if result.sender in self.pending:
            self.pending.discard(result.sender)
            self.results[result.sender] = (result, arrays)
            self._check()

    def fail(self, name: str, reason: str) -> None:
        """A learner asked for this task will not answer."""
        if name in self.pending:
            self.pending.discard(name)
            self.failed[name] = reason
            self._check()

    def _check(self) -> None:
        if not self.pending:
            self.done.set()


@dataclass
class Coordinator:
    """The aggregator of one group; see the module docstring."""

    bus: Bus
    group: Group
    name: str
    run: str
    settings: TrainingSettings
    report: Reporter
    label: str = "learner"  # "cluster" for the hierarchical root
    expected: int | None = None  # how many learners were deployed, when known
    alive: dict[str, float] = field(default_factory=dict)  # name -> last seen (loop time)
    gone: dict[str, str] = field(default_factory=dict)  # name -> why
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _current: Collection | None = None
    _reported: set[tuple[str, str]] = field(default_factory=set)

    def routes(self, router: Router) -> None:
        """Receive this group's learner presence and results."""
        router.add(self.group.topic(Channel.LEARNERS), self._on_presence)
        router.add(self.group.topic(Channel.RESULTS), self._on_result)

    async def start(self) -> None:
        """Say hello: learners already running join again (after a restart of ours)."""
        await self.bus.send_json(self.group.aggregator, self._presence("hello"))

    def _presence(self, kind: str, reason: str = "") -> Presence:
        return Presence.model_validate(
            {"kind": kind, "sender": self.name, "run": self.run, "reason": reason}
        )

    async def _on_presence(self, payload: bytes) -> None:
        message = wire.decode_json(Presence, payload)
        now = asyncio.get_running_loop().time()
        if message.kind == "leave":
            self._lose(message.sender, message.reason or "it left")
        elif message.kind in ("join", "beat"):
            new = message.sender not in self.alive
            self.alive[message.sender] = now
            self.gone.pop(message.sender, None)
            if new:
                tally = f" ({len(self.alive)}/{self.expected})" if self.expected else ""
                await self.report.say(f"{self.label.capitalize()} {message.sender} joined{tally}")
        self._changed.set()

    async def _on_result(self, payload: bytes) -> None:
        limit = self.settings.frame_limit
        result, arrays = wire.decode_frame(Result, payload, limit)
        current = self._current
        if current is None or result.task_id != current.task.task_id:
            return
        if result.ok:
            current.deliver(result, arrays)
        else:  # a learner that failed a task leaves (see member.py): ask it no more
            self._lose(result.sender, result.error or "it reported a failure")

    def _lose(self, name: str, reason: str) -> None:
        self.alive.pop(name, None)
        self.gone[name] = reason
        if self._current is not None:
            self._current.fail(name, reason)
        self._changed.set()

    async def watch(self) -> None:
        """Beat for the learners and mark the silent ones gone, every heartbeat interval."""
        timeout = self.settings.learner_timeout
        while True:
            await self.bus.send_json(self.group.aggregator, self._presence("beat"))
            now = asyncio.get_running_loop().time()
            for name, seen in list(self.alive.items()):
                if now - seen > timeout:
                    self._lose(name, f"it was silent for more than {timeout:g} s")
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def wait_for(self, needed: int, why: str) -> None:
        """Wait until ``needed`` learners are alive, at most ``join_timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.join_timeout
        while len(self.alive) < needed:
            if self.expected is not None and self.expected - len(self.gone) < needed:
                break
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                break
        if len(self.alive) < needed:
            raise TrainingFailedError(
                f"{why} needs {count(needed, self.label)}, {len(self.alive)} "
                f"{'is' if len(self.alive) == 1 else 'are'} there"
                + (f" after {self.settings.join_timeout:g} s" if not self.gone else "")
                + self._why_gone()
            )
        await self._report_gone()

    def _why_gone(self) -> str:
        return "".join(f"; {name}: {why}" for name, why in sorted(self.gone.items()))

    async def _report_gone(self) -> None:
        for name, why in sorted(self.gone.items()):
            if (name, why) not in self._reported:
                self._reported.add((name, why))
                await self.report.warning(
                    f"{self.label.capitalize()} {name} is gone: {why}; "
                    f"{count(len(self.alive), self.label)} left"
                )

    async def run_task(
        self, op: Op, round_: int, parameters: Arrays, minimum: int, cycle: int | None = None
    ) -> list[tuple[Result, Arrays]]:
        """Ask every live learner to ``op``; at least ``minimum`` must answer."""
        where = f"round {round_}" if cycle is None else f"cycle {cycle}, round {round_}"
        await self.wait_for(minimum, f"{where} ({VERBS[op]})")
        task = Task(
            task_id=uuid.uuid4().hex, op=op, round=round_, cycle=cycle, learners=sorted(self.alive)
        )
        collection = self._current = Collection(task, set(task.learners))
        log.debug("%s: task %s %s %s to %s", self.name, task.task_id, op, where, task.learners)
        try:
            await self.bus.send_frame(self.group.tasks, task, parameters)
            try:
                async with asyncio.timeout(self.settings.round_timeout):
                    await collection.done.wait()
            except TimeoutError:
                for name in list(collection.pending):
                    collection.fail(name, f"no answer within {self.settings.round_timeout:g} s")
        finally:
            self._current = None
        answered = len(collection.results)
        lost = "; ".join(f"{n}: {why}" for n, why in sorted(collection.failed.items()))
        if answered < minimum:
            raise TrainingFailedError(
                f"{where} needs {count(minimum, self.label)} to {VERBS[op]}, "
                f"{answered} answered; {lost}"
            )
        for name, why in sorted(collection.failed.items()):
            self._reported.add((name, why))
            await self.report.say(
                f"{self.label.capitalize()} {name} dropped from {where} ({VERBS[op]}): {why}; "
                f"continuing with {count(answered, self.label)}",
                level=Level.WARNING,
            )
        return list(collection.results.values())

    async def finish(self, reason: str = "training finished") -> None:
        """Tell the learners the training is over, then leave."""
        task = Task(task_id=uuid.uuid4().hex, op="done", round=0, learners=sorted(self.alive))
        await self.bus.send_frame(self.group.tasks, task)
        await self.bus.send_json(self.group.aggregator, self._presence("leave", reason))


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """One FedAvg round: the aggregated parameters and their evaluation."""

    parameters: Arrays
    metrics: Evaluation
    examples: int  # training examples of the fits
    learners: int  # learners whose fits were averaged
    seconds: float


async def fedavg_round(
    coordinator: Coordinator,
    number: int,
    parameters: Arrays,
    min_fit: int,
    min_evaluate: int,
    cycle: int | None = None,
) -> RoundOutcome:
    """Fit on the learners, average by example counts, evaluate the average on them."""
    started = time.perf_counter()
    fits = await coordinator.run_task("fit", number, parameters, min_fit, cycle=cycle)
    averaged = weighted_mean([(arrays, r.examples) for r, arrays in fits])
    evaluations = await coordinator.run_task("evaluate", number, averaged, min_evaluate, cycle)
    return RoundOutcome(
        averaged,
        metrics_of(evaluations),
        sum(r.examples for r, _ in fits),
        len(fits),
        time.perf_counter() - started,
    )


def metrics_of(results: list[tuple[Result, Arrays]]) -> Evaluation:
    """The weighted loss and accuracy of evaluation results."""
    return weighted_evaluation(
        [Evaluation(r.loss or 0.0, r.accuracy or 0.0, r.examples) for r, _ in results]
    )

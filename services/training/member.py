"""The learner side of one group: join, beat, answer the aggregator's tasks, leave.

Used by learners (tasks answered by their worker) and by cluster aggregators (tasks
answered by running rounds with their own learners). A failure while answering is sent to
the aggregator as a failed result, then the member leaves with the same reason and raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.training import wire
from services.training.bus import Bus
from services.training.errors import TrainingError, TrainingFailedError, UserCodeError
from services.training.fedavg import Arrays
from services.training.messages import Presence, Result, Task, UserError
from services.training.router import Router
from services.training.settings import TrainingSettings
from services.training.topics import Channel, Group

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a member's handler returns for a task."""

    examples: int
    parameters: Arrays = field(default_factory=list)
    loss: float | None = None
    accuracy: float | None = None


Handler = Callable[[Task, Arrays], Awaitable[Answer]]


@dataclass
class Member:
    """A learner of ``group``; see the module docstring."""

    bus: Bus
    group: Group
    name: str
    run: str
    settings: TrainingSettings
    handle: Handler
    _tasks: asyncio.Queue[tuple[Task, Arrays]] = field(default_factory=asyncio.Queue)
    _aggregator_seen: float = 0.0
    _aggregator_run: str = ""
    _done: set[str] = field(default_factory=set)

    @property
    def heard_aggregator(self) -> bool:
        """Whether the aggregator's presence reached this member (so it hears our leave)."""
        return bool(self._aggregator_run)

    def presence(self, kind: str, reason: str = "") -> Presence:
        """The presence message of ``kind`` from this member."""
        return Presence.model_validate(
            {"kind": kind, "sender": self.name, "run": self.run, "reason": reason[:2000]}
        )

    def routes(self, router: Router) -> None:
        """Receive the group's tasks and the aggregator's presence."""
        router.add(self.group.topic(Channel.TASKS), self._on_task)
        router.add(self.group.topic(Channel.AGGREGATOR), self._on_aggregator)

    async def _on_task(self, payload: bytes) -> None:
        limit = self.settings.frame_limit
        task, arrays = wire.decode_frame(Task, payload, limit)
        log.debug("%s: got task %s %s round %d", self.name, task.task_id, task.op, task.round)
        self._aggregator_seen = asyncio.get_running_loop().time()
        if task.op == "done" or self.name in task.learners:
            self._tasks.put_nowait((task, arrays))

    async def _on_aggregator(self, payload: bytes) -> None:
        message = wire.decode_json(Presence, payload)
        if message.kind == "leave":
            log.info("aggregator %s left: %s", message.sender, message.reason)
            return
        self._aggregator_seen = asyncio.get_running_loop().time()
        if message.run != self._aggregator_run:
            self._aggregator_run = message.run
            if message.kind in {"hello", "beat"}:
                await self.bus.send_json(self.group.learners, self.presence("join"))

    async def leave(self, reason: str) -> None:
        """Tell the aggregator this member is gone and why."""
        await self.bus.send_json(self.group.learners, self.presence("leave", reason))

    async def beat(self) -> None:
        """Join, then beat every interval; fail when the aggregator is silent too long."""
        loop = asyncio.get_running_loop()
        self._aggregator_seen = loop.time()
        await self.bus.send_json(self.group.learners, self.presence("join"))
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            await self.bus.send_json(self.group.learners, self.presence("beat"))
            silent = loop.time() - self._aggregator_seen
            if silent > self.settings.aggregator_timeout:
                raise TrainingFailedError(
                    f"the aggregator of group {self.group.name} has been silent for "
                    f"{silent:.0f} s (setting aggregator_timeout)"
                )

    async def serve(self) -> int:
        """Answer tasks until the aggregator says done; the number of tasks answered."""
        answered = 0
        while True:
            task, arrays = await self._tasks.get()
            while not self._tasks.empty():  # only the newest task still matters
                task, arrays = self._tasks.get_nowait()
            if task.op == "done":
                return answered
            if task.task_id in self._done:
                continue
            self._done.add(task.task_id)
            await self._answer(task, arrays)
            log.debug("%s: answered task %s", self.name, task.task_id)
            answered += 1

    async def _answer(self, task: Task, arrays: Arrays) -> None:
        try:
            answer = await self.handle(task, arrays)
        except TrainingError as exc:
            user = None
            if isinstance(exc, UserCodeError):
                w = exc.where
                user = UserError(type=w.type, message=w.message[:4000], file=w.file, line=w.line)
            failed = Result(
                task_id=task.task_id,
                sender=self.name,
                ok=False,
                error=str(exc)[:4000],
                user_error=user,
            )
            await self.bus.send_frame(self.group.results, failed)
            await self.leave(str(exc))
            raise
        result = Result(
            task_id=task.task_id,
            sender=self.name,
            examples=answer.examples,
            loss=answer.loss,
            accuracy=answer.accuracy,
        )
        await self.bus.send_frame(self.group.results, result, answer.parameters)

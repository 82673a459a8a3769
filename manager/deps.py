"""What the manager's handlers share: their dependencies and the refusal error."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import FlopsError
from manager.pipeline import PIPELINE, Pipeline, Settings
from manager.store.interface import Store
from protocol.events import Event
from runtimes.base import Runtime
from slas import ProjectSLA

MANAGER = "manager"


class RefusedError(FlopsError):
    """A request the manager will not carry out; ``code`` is stable for clients."""

    def __init__(self, code: str, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or []


class ProjectLocks:
    """One lock per project, so a stop or delete never interleaves with a start step."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._users: defaultdict[str, int] = defaultdict(int)

    @asynccontextmanager
    async def hold(self, project_id: str) -> AsyncIterator[None]:
        """Hold the project's lock; the lock is forgotten when nobody holds or waits."""
        self._users[project_id] += 1
        try:
            async with self._locks[project_id]:
                yield
        finally:
            self._users[project_id] -= 1
            if not self._users[project_id]:
                del self._users[project_id], self._locks[project_id]


@dataclass
class Liveness:
    """When each deployed service (by name) was deployed and last heard from."""

    deployed: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)

    def deploy(self, name: str, now: float | None = None) -> None:
        """A service was (re)deployed: its deadline starts now."""
        self.deployed[name] = time.time() if now is None else now
        self.seen.pop(name, None)

    def heard(self, name: str, now: float | None = None) -> None:
        """A service reported (an event or a heartbeat)."""
        if name in self.deployed:
            self.seen[name] = time.time() if now is None else now

    def forget(self, name: str) -> None:
        """A service is gone; stop watching it."""
        self.deployed.pop(name, None)
        self.seen.pop(name, None)

    def overdue(self, name: str, deadline: float, now: float) -> str | None:
        """Why ``name`` is overdue, or ``None`` if it is not (or not watched)."""
        if name not in self.deployed:
            return None
        last = self.seen.get(name)
        if last is None and now - self.deployed[name] > deadline:
            return f"never reported within {deadline:g}s of its deployment"
        if last is not None and now - last > deadline:
            return f"stopped reporting: nothing for {now - last:.0f}s (deadline {deadline:g}s)"
        return None


QUOTA_WINDOW = 60.0  # seconds: max_starts_per_minute counts the starts in this window


@dataclass
class Quotas:
    """Per-user limits on project starts; 0 means no limit (the stack's settings set them).

    ``max_live``: projects not in a final state (counted in the store, so every
    replica sees them); ``max_per_minute``: projects this manager made in the last minute.
    """

    max_live: int = 0
    max_per_minute: int = 0
    clock: Callable[[], float] = time.monotonic
    _starts: dict[str, deque[float]] = field(default_factory=dict)
    _locks: ProjectLocks = field(default_factory=ProjectLocks)

    @asynccontextmanager
    async def admit(self, user: str, store: Store) -> AsyncIterator[Callable[[], None]]:
        """Let one start of ``user`` in, or raise ``RefusedError("quota_exceeded")``.

        A user's starts are checked one at a time, so a burst cannot slip past the count;
        call the function it yields once the project is made, so that it counts.
        """
        if not (self.max_live or self.max_per_minute):
            yield lambda: None
            return
        async with self._locks.hold(user):
            await self._check(user, store)
            yield lambda: self._starts.setdefault(user, deque()).append(self.clock())

    async def _check(self, user: str, store: Store) -> None:
        recent = self._starts.get(user, deque())
        while recent and self.clock() - recent[0] >= QUOTA_WINDOW:
            recent.popleft()
        if not recent:
            self._starts.pop(user, None)
        if self.max_per_minute and len(recent) >= self.max_per_minute:
            wait = QUOTA_WINDOW - (self.clock() - recent[0])
            raise RefusedError(
                "quota_exceeded",
                f"{user} started {len(recent)} projects in the last minute, the limit "
                f"(setting max_starts_per_minute = {self.max_per_minute}); "
                f"try again in {wait:.0f}s",
            )
        live = await store.live_projects(user) if self.max_live else 0
        if self.max_live and live >= self.max_live:
            raise RefusedError(
                "quota_exceeded",
                f"{user} has {live} live projects, the limit (setting max_live_projects = "
                f"{self.max_live}); stop or delete one first",
            )


Queue = Callable[[str, Event], "asyncio.Future[None] | None"]  # (user, event)


def not_queued(_user: str, _event: Event) -> asyncio.Future[None] | None:
    """The default ``Deps.queue``: no log in this process to queue for (``emit`` instead)."""
    return None


@dataclass
class Deps:
    """What the handlers need: store, runtime, a way to emit events, and settings."""

    store: Store
    runtime: Runtime
    emit: Callable[[str, Event], Awaitable[None]]  # (user, event)
    stages: Settings = field(default_factory=Settings)  # what stages hand their services
    service_deadline: float = 60.0
    host: str = ""  # this replica: it runs the observers and builders of the projects it made
    pipeline: Pipeline = PIPELINE  # the stages every project goes through
    quotas: Quotas = field(default_factory=Quotas)
    # Folders whose git repositories an SLA may name as file://; None: any folder.
    repo_roots: tuple[Path, ...] | None = None
    locks: ProjectLocks = field(default_factory=ProjectLocks)
    liveness: Liveness = field(default_factory=Liveness)
    # The validated SLAs of recent projects (an SLA never changes), so that a start
    # validates its SLA once, not again for each stage: see ``handlers.project_sla``.
    slas: dict[str, ProjectSLA] = field(default_factory=dict)
    # Queues one of the manager's own events for its project's log at once, without waiting
    # for it to be stored (the future says when it is); None when that log is not in this
    # process. So several events of one step are stored together: ``manager.told.Told``.
    queue: Queue = not_queued

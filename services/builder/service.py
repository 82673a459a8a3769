"""The builder service of a project: stages 2-3 of the original, on this node.

It resolves the SLA's ``ml_repo_url`` to one commit (``mlrepos.resolve_repo``: the
``repo_sources`` setting, the URL, or, offline, the bundled example with a WARNING), exports
that commit, checks the contract, and builds or reuses the learner's and aggregator's
environment images (``images.build_actor_images``). Every notice of those libraries becomes
an event of the project, so the log is never silent for more than the progress interval
while uv works. It ends with an ``images_ready`` event whose data (``ImagesReady``) is what
the training stage needs; a failure is one ERROR event that fails the project.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.errors import FlopsError
from core.progress import Notice, Progress
from images.actors import ActorImages, build_actor_images
from images.store import ImageStore
from images.uses import record_use
from images.uvrun import UvOptions
from mlrepos.sources import RepoSnapshot
from protocol.events import Event, Facts, Level, event_id
from protocol.states import ProjectState
from services.builder.facts import IMAGES_READY, images_ready
from services.builder.resolve import SnapshotCache
from services.context import Beat, Emit, ServiceContext


class BuildFailedError(FlopsError):
    """The builder could not do its job; the project has been told why."""


class BuilderConfig(BaseModel):
    """What the manager hands the builder."""

    model_config = ConfigDict(extra="forbid")
    repo_url: str
    registry: str
    data_dir: str = Field(min_length=1)  # the node's data dir: repos/, images/, data/
    user: str = ""  # the project's customer (recorded as the images' user)
    data_tags: list[str] = Field(default_factory=list)  # handed on to the training stage
    repo_sources: dict[str, str] = Field(default_factory=dict)  # URL -> local source
    git_timeout: float = 30.0
    heartbeat_interval: float = 15.0
    progress_interval: float = 2.0  # seconds of uv silence before a "still working" line
    build_timeout: float = 900.0  # a uv step that runs longer fails the build
    mlflow_tracking: bool = False  # the aggregator's image gets MLflow (services.tracking)


def failure_text(exc: Exception) -> str:
    """The original's failure sentence around our reason (uv's may span lines)."""
    reason = str(exc).rstrip().rstrip(".")
    joint = "\n" if "\n" in reason else ". "
    return f"{reason}{joint}Builder failed. Terminating this FLOps Project."


@contextlib.asynccontextmanager
async def beating(beat: Beat, interval: float) -> AsyncIterator[None]:
    """Say the service is alive every ``interval`` while the block runs."""

    async def loop() -> None:
        while True:
            await beat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Builder:
    """One project's build: turns notices into events and runs the two libraries."""

    def __init__(
        self, service_id: str, name: str, project_id: str, config: BuilderConfig, emit: Emit
    ) -> None:
        self.id, self.name, self.project_id = service_id, name, project_id
        self.config = config
        self._emit = emit
        self._count = 0

    async def say(
        self,
        text: str,
        level: Level = Level.INFO,
        state: ProjectState | None = None,
        data: Facts | None = None,
    ) -> None:
        """Emit one event of the project (ids deterministic per builder and step)."""
        self._count += 1
        await self._emit(
            Event(
                event_id=event_id(self.id, "build", str(self._count)),
                project_id=self.project_id,
                source=self.name,
                level=level,
                text=text[:4096],
                state=state,
                data=data,
            )
        )

    async def notice(self, notice: Notice) -> None:
        """A library's notice as an event (``core.progress.Progress``)."""
        await self.say(notice.text, Level(notice.level))

    async def run(self, resolve: SnapshotCache, beat: Beat) -> ActorImages:
        """Resolve, check, build or reuse; the images, or ``BuildFailedError``.

        It says it is alive from its first report on, while the build runs: a builder that
        hangs before it reports anything is failed by the manager's deadline.
        """
        cfg = self.config
        data_dir = Path(cfg.data_dir)
        progress: Progress = self.notice
        try:
            snapshot: RepoSnapshot = await resolve.resolve(cfg, progress)
            await self.say(
                f"Repository {snapshot.url} at commit {snapshot.commit} ({snapshot.source})"
            )
            async with beating(beat, cfg.heartbeat_interval):
                images = await build_actor_images(
                    snapshot,
                    ImageStore(data_dir),
                    registry=cfg.registry,
                    tracking=cfg.mlflow_tracking,
                    options=UvOptions(interval=cfg.progress_interval, timeout=cfg.build_timeout),
                    progress=progress,
                )
        except FlopsError as exc:
            await self.say(failure_text(exc), Level.ERROR, ProjectState.FAILED)
            raise BuildFailedError(str(exc)) from exc
        names = [images.learner.name, images.aggregator.name]
        record_use(data_dir, self.project_id, cfg.user, names)
        values = images_ready(snapshot, images, cfg)
        await self.say(
            f"FLOps images ready: {images.learner.name} and {images.aggregator.name}",
            data=Facts(type=IMAGES_READY, values=values),
        )
        return images


async def run_builder(
    service_id: str,
    name: str,
    project_id: str,
    config: BuilderConfig,
    emit: Emit,
    beat: Beat,
    resolve: SnapshotCache | None = None,
) -> ActorImages:
    """Run one project's build to its end (its images), reporting alive meanwhile."""
    builder = Builder(service_id, name, project_id, config, emit)
    return await builder.run(resolve or SnapshotCache(), beat)


async def run_builder_in(ctx: ServiceContext[BuilderConfig]) -> None:
    """The builder's entry (``services.kinds``): ``run_builder`` with the context's reporting.

    Builders of one process share one cache of resolved repositories.
    """
    me = ctx.spec
    cache = ctx.shared.get(SnapshotCache)
    await run_builder(me.id, me.name, me.project_id, ctx.config, ctx.emit, ctx.beat, cache)

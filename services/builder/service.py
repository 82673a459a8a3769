"""The builder service of a project.

It resolves the repository's current commit with git (``file://`` repositories work, which
is how tests run offline), reports ``Start building <image> image``, and puts the project
in the BUILDING state. The image build itself is the next stage and not done yet. When the
repository cannot be reached or is not GitHub-style, it reports a failure and the project
fails.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict

from core.errors import FlopsError
from protocol.events import Event, Level, event_id
from protocol.states import ProjectState
from services.context import Beat, Emit, ServiceContext
from slas.model import FILE_URL, GITHUB_URL


class BuildFailedError(FlopsError):
    """The builder could not do its job; the project has been told why."""


class BuilderConfig(BaseModel):
    """What the manager hands the builder."""

    model_config = ConfigDict(extra="forbid")
    repo_url: str
    registry: str
    git_timeout: float = 30.0
    heartbeat_interval: float = 15.0


def image_name(registry: str, repo_url: str, commit: str, kind: str = "base") -> str:
    """``<registry>/<github user, lower case>/<repo>/<kind>:<commit sha>``."""
    match = GITHUB_URL.match(repo_url) or FILE_URL.match(repo_url)
    if match is None:
        raise BuildFailedError(f"{repo_url} is not a GitHub-style repository URL")
    return f"{registry}/{match.group(1).lower()}/{match.group(2)}/{kind}:{commit}"


async def resolve_commit(repo_url: str, timeout: float) -> str:
    """The commit sha of the repository's HEAD, via ``git ls-remote``."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "ls-remote",
            "--exit-code",
            repo_url,
            "HEAD",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise BuildFailedError(f"git is not available: {exc}") from exc
    try:
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a cancellation
        # that arrives as the process ends, and a stopping stack then waits for the builder.
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BuildFailedError(f"cannot reach {repo_url}: no answer within {timeout:g}s") from None
    sha = out.decode(errors="replace").split("\t", 1)[0].strip()
    if proc.returncode != 0 or len(sha) != 40:
        reason = err.decode(errors="replace").strip().splitlines()
        raise BuildFailedError(f"cannot reach {repo_url}: {reason[-1] if reason else 'no HEAD'}")
    return sha


Resolve = Callable[[str, float], Awaitable[str]]  # (repo url, timeout) -> commit sha


class CommitCache:
    """HEADs for builders that share a process, asked of git once per repository and ttl.

    However many projects of one repository start within ``ttl`` seconds, one
    ``git ls-remote`` answers them all.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self._ttl = ttl
        self._known: dict[str, tuple[float, asyncio.Future[str]]] = {}

    async def resolve(self, repo_url: str, timeout: float) -> str:
        """The repository's HEAD, asked of git at most once per ``ttl``."""
        loop = asyncio.get_running_loop()
        known = self._known.get(repo_url)
        if known is None or loop.time() - known[0] > self._ttl:
            future = asyncio.ensure_future(resolve_commit(repo_url, timeout))
            known = self._known[repo_url] = (loop.time(), future)
        try:
            return await asyncio.shield(known[1])
        except BuildFailedError:
            self._known.pop(repo_url, None)  # ask again next time
            raise


async def run_builder(
    service_id: str,
    name: str,
    project_id: str,
    config: BuilderConfig,
    emit: Emit,
    beat: Beat,
    resolve: Resolve = resolve_commit,
) -> None:
    """Run the builder: report the build start, or the failure, then keep reporting alive."""
    try:
        image_name(config.registry, config.repo_url, "x")
        commit = await resolve(config.repo_url, config.git_timeout)
    except BuildFailedError as exc:
        await emit(
            Event(
                event_id=event_id(service_id, "failed"),
                project_id=project_id,
                source=name,
                level=Level.ERROR,
                text=f"Builder failed: {exc}. Terminating this FLOps Project.",
                state=ProjectState.FAILED,
            )
        )
        raise
    image = image_name(config.registry, config.repo_url, commit)
    await emit(
        Event(
            event_id=event_id(service_id, "start", commit),
            project_id=project_id,
            source=name,
            text=f"Start building {image} image (This can take a while)",
            state=ProjectState.BUILDING,
        )
    )
    # The image build is the next stage: until it exists the builder rests here, alive.
    while True:
        await asyncio.sleep(config.heartbeat_interval)
        await beat()


async def run_builder_in(ctx: ServiceContext[BuilderConfig]) -> None:
    """The builder's entry (``services.kinds``): ``run_builder`` with the context's reporting.

    Builders of one process share one cache of repository HEADs.
    """
    me = ctx.spec
    resolve = ctx.shared.get(CommitCache).resolve
    await run_builder(me.id, me.name, me.project_id, ctx.config, ctx.emit, ctx.beat, resolve)

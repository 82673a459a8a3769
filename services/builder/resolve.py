"""Repository resolution shared by the builders of one process.

However many projects of one repository start within ``ttl`` seconds, one resolution (one
``git ls-remote``, one export) answers them all; each project still gets the resolution's
notices (the WARNING of an offline fallback) in its own log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from core.progress import Progress, Recorder
from mlrepos.errors import RepoError
from mlrepos.sources import RepoSnapshot, resolve_repo

if TYPE_CHECKING:
    from services.builder.service import BuilderConfig

__all__ = ["SnapshotCache", "resolve_repo"]
Key = tuple[str, str, tuple[tuple[str, str], ...]]


async def _resolve(config: BuilderConfig) -> tuple[RepoSnapshot, Recorder]:
    notes = Recorder()
    snapshot = await resolve_repo(
        config.repo_url,
        _data_dir(config),
        repo_sources=config.repo_sources,
        git_timeout=config.git_timeout,
        progress=notes,
    )
    return snapshot, notes


def _data_dir(config: BuilderConfig) -> Path:
    return Path(config.data_dir)


class SnapshotCache:
    """Resolutions by (URL, data dir, sources), each kept ``ttl`` seconds; failures not kept."""

    def __init__(self, ttl: float = 5.0) -> None:
        self._ttl = ttl
        self._known: dict[Key, tuple[float, asyncio.Future[tuple[RepoSnapshot, Recorder]]]] = {}

    async def resolve(self, config: BuilderConfig, progress: Progress) -> RepoSnapshot:
        """The repository's snapshot; its notices are told to ``progress``."""
        loop = asyncio.get_running_loop()
        key = (config.repo_url, config.data_dir, tuple(sorted(config.repo_sources.items())))
        known = self._known.get(key)
        if known is None or loop.time() - known[0] > self._ttl:
            known = self._known[key] = (loop.time(), asyncio.ensure_future(_resolve(config)))
        try:
            snapshot, notes = await asyncio.shield(known[1])
        except RepoError:
            if self._known.get(key) is known:
                del self._known[key]  # asked again next time
            raise
        for notice in notes.notices:
            await progress(notice)
        return snapshot

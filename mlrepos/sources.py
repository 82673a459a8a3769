"""Resolve an SLA's ``ml_repo_url`` to one commit and export that commit's files.

The source, in order:

1. the ``repo_sources`` setting: URL -> a local git repository, a plain folder, or
   ``bundled:<name>`` (no warning: the user asked for it);
2. the URL itself (``git ls-remote`` for HEAD, then a shallow fetch of exactly that commit);
3. when the URL cannot be reached and its repository name is one bundled with FLOps, that
   bundled repository, with a WARNING naming which source was used instead of which URL.

The export lands in ``<data_dir>/repos/<user>/<repo>/<commit>/`` (written aside and renamed
into place; an existing export of the commit is reused), so that everything after
resolution uses the same commit even if the repository moves on.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.progress import Notice, Progress, no_progress
from mlrepos import bundled, git
from mlrepos.errors import RepoError
from slas.model import FILE_URL, GITHUB_URL


@dataclass(frozen=True)
class RepoSnapshot:
    """One commit of a repository, exported: what every later stage builds and runs."""

    url: str  # the SLA's ml_repo_url
    source: str  # what was used: the URL, a local path, or "bundled:<name>"
    commit: str  # 40 hex: a git sha, or a content hash for folders without git
    user: str  # lower case, as in image names
    repo: str
    path: Path  # the exported files
    fallback: bool = False  # a bundled repository stood in for an unreachable URL


def split_url(url: str) -> tuple[str, str]:
    """``(user, repo)`` of a GitHub-style or ``file://`` URL, the user in lower case."""
    match = GITHUB_URL.match(url) or FILE_URL.match(url)
    if match is None:
        raise RepoError(f"{url} is not a GitHub-style repository URL")
    return match.group(1).lower(), match.group(2)


def _mapped(url: str, repo_sources: Mapping[str, str]) -> str | None:
    def norm(u: str) -> str:
        return u.rstrip("/").removesuffix(".git")

    return next((src for key, src in repo_sources.items() if norm(key) == norm(url)), None)


def _local_folder(source: str) -> tuple[Path, bool]:
    """The folder of a local source and whether it is a git repository."""
    if source.startswith(bundled.PREFIX):
        folder = bundled.example(source.removeprefix(bundled.PREFIX))
        if folder is None:
            raise RepoError(f"no bundled repository {source!r}; bundled: {bundled.names()}")
        return folder, False
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise RepoError(f"repository source {source} is not a folder")
    return folder, (folder / ".git").exists()


async def _commit_of(source: str, git_timeout: float) -> tuple[str, Path, bool]:
    """The commit of a local source, its folder and whether it is a git repository."""
    folder, is_git = _local_folder(source)
    if is_git:
        return await git.local_head(folder, git_timeout), folder, True
    return bundled.content_commit(folder), folder, False


def _copy_folder(folder: Path, tmp: Path) -> None:
    tmp.mkdir()
    for path in bundled.files(folder):
        dest = tmp / path.relative_to(folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def _prepare(target: Path) -> Path | None:
    """A scratch folder beside ``target``, or None when the commit is exported already."""
    if target.is_dir():
        return None  # exports of a commit never change
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".tmp-{uuid.uuid4().hex}")


def _finish(tmp: Path, target: Path) -> None:
    tmp.mkdir(exist_ok=True)  # an empty commit exports an empty folder
    try:
        tmp.rename(target)
    except OSError:
        if not target.is_dir():  # a concurrent export of the same commit won: fine
            raise


def _clean(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(tmp.with_name(tmp.name + ".git"), ignore_errors=True)


async def _export(
    source: str, folder: Path | None, is_git: bool, commit: str, target: Path, timeout: float
) -> None:
    """Export ``commit`` of a remote URL (no folder), a local git repository, or a folder."""
    tmp = _prepare(target)
    if tmp is None:
        return
    try:
        if folder is None:
            await git.export_remote(source, commit, tmp, timeout)
        elif is_git:
            await git.export_local(folder, commit, tmp, timeout)
        else:
            _copy_folder(folder, tmp)
        _finish(tmp, target)
    finally:
        _clean(tmp)


async def resolve_repo(
    url: str,
    data_dir: Path,
    *,
    repo_sources: Mapping[str, str] | None = None,
    git_timeout: float = 30.0,
    progress: Progress = no_progress,
) -> RepoSnapshot:
    """Pick the source of ``url``, resolve it to one commit and export that commit."""
    user, repo = split_url(url)
    source = _mapped(url, repo_sources or {})
    fallback = False
    if source is not None:
        commit, folder, is_git = await _commit_of(source, git_timeout)
        await progress(
            Notice(
                f"Using {source} for {url} (setting repo_sources)",
                data={"source": source, "url": url},
            )
        )
    else:
        try:
            source, commit, folder = url, await git.remote_head(url, git_timeout), None
            is_git = True
        except RepoError as exc:
            example = bundled.example(repo)
            if example is None:
                raise
            source, fallback, is_git = bundled.PREFIX + repo, True, False
            commit, folder = bundled.content_commit(example), example
            await progress(
                Notice(
                    f"{exc}; using the example repository bundled with FLOps, '{repo}' "
                    f"(content {commit[:12]}), instead of {url}",
                    level="warning",
                    data={"source": source, "url": url, "commit": commit},
                )
            )
    target = data_dir / "repos" / user / repo / commit
    await _export(source, folder, is_git, commit, target, git_timeout)
    return RepoSnapshot(url, source, commit, user, repo, target, fallback)

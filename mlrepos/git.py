"""git, run as an asyncio subprocess with a timeout; its failures become ``RepoError``."""

from __future__ import annotations

import asyncio
import os
import tarfile
from io import BytesIO
from pathlib import Path

from mlrepos.errors import RepoError

_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}

# What git adds after the cause of a failed fetch, whatever the cause was.
_GIT_BOILERPLATE = (
    "could not read from remote repository",
    "please make sure you have the correct access rights",
    "and the repository exists",
)


def git_reason(stderr: bytes, limit: int = 300) -> str:
    """The lines of git's error output that say what went wrong, in one line.

    git ends many failures with the same advice ("Please make sure you have the correct
    access rights and the repository exists."); the cause is in the lines before it.
    """
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    meaningful = [
        line.removeprefix("fatal: ").removeprefix("error: ")
        for line in lines
        if line and not any(b in line.lower() for b in _GIT_BOILERPLATE)
    ]
    reason = "; ".join(dict.fromkeys(meaningful)) or "the repository has no HEAD"
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


async def run_git(*args: str, timeout: float, what: str) -> bytes:
    """``git args``'s stdout; ``RepoError`` naming ``what`` with git's last line on failure."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **_ENV},
        )
    except OSError as exc:
        raise RepoError(f"git is not available: {exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RepoError(f"{what}: no answer within {timeout:g}s") from None
    if proc.returncode != 0:
        raise RepoError(f"{what}: {git_reason(err)}")
    return out


async def remote_head(url: str, timeout: float) -> str:
    """The commit sha of the repository's HEAD (``git ls-remote``)."""
    out = await run_git(
        "ls-remote", "--exit-code", url, "HEAD", timeout=timeout, what=f"cannot reach {url}"
    )
    sha = out.decode(errors="replace").split("\t", 1)[0].strip()
    if len(sha) != 40:
        raise RepoError(f"cannot reach {url}: no HEAD")
    return sha


async def local_head(path: Path, timeout: float) -> str:
    """The commit sha of HEAD of a local repository."""
    out = await run_git(
        "-C", str(path), "rev-parse", "HEAD", timeout=timeout, what=f"{path} has no commit"
    )
    return out.decode().strip()


def _untar(data: bytes, target: Path) -> None:
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(target, filter="data")


async def export_remote(url: str, commit: str, target: Path, timeout: float) -> None:
    """The files of ``commit`` of ``url`` into ``target`` (a shallow fetch of that commit)."""
    scratch = target.with_name(target.name + ".git")
    what = f"cannot fetch commit {commit} of {url}"
    await run_git("init", "-q", "--bare", str(scratch), timeout=timeout, what=what)
    await run_git(
        "-C", str(scratch), "fetch", "-q", "--depth", "1", url, commit, timeout=timeout, what=what
    )
    data = await run_git(
        "-C", str(scratch), "archive", "--format=tar", commit, timeout=timeout, what=what
    )
    _untar(data, target)


async def export_local(path: Path, commit: str, target: Path, timeout: float) -> None:
    """The files of ``commit`` of the local repository ``path`` into ``target``."""
    data = await run_git(
        "-C",
        str(path),
        "archive",
        "--format=tar",
        commit,
        timeout=timeout,
        what=f"cannot export {path}",
    )
    _untar(data, target)

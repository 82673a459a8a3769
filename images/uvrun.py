"""uv, run as an asyncio subprocess: its progress as notices, its failure in its own words.

uv comes from the ``uv`` package on PyPI (a dependency of FLOps; never downloaded at run
time). Each line uv writes is passed on as an INFO notice; while uv is silent (a long
download, a slow resolution) a notice every ``interval`` seconds says it is still working,
so a build is never silent for long. A failure keeps uv's message whole (only bounded in
length, at line boundaries), without colours.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from core.progress import Notice, Progress, no_progress
from images.errors import ImageError

MAX_MESSAGE = 3000  # characters of uv's message kept in an error (events hold 4096)
# per-package lines of an install (uv summarises them) and shell hints
_QUIET_PREFIXES = (" + ", " - ", " ~ ", "Activate with", "Using ", "Creating virtual environment")


def uv_binary() -> str:
    """The uv executable shipped in the ``uv`` wheel (FLOps' dependency)."""
    try:
        import uv  # noqa: PLC0415 - only the builder needs it

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError) as exc:
        raise ImageError(f"uv is not installed with FLOps ({exc}); reinstall FLOps") from None


@dataclass(frozen=True)
class UvOptions:
    """How uv is run: progress interval, overall limit, extra environment."""

    interval: float = 2.0  # seconds of silence before a "still working" notice
    timeout: float = 900.0  # a uv command that runs longer is stopped: never a hang
    env: tuple[tuple[str, str], ...] = ()


def readable(stderr: list[str]) -> str:
    """The failure message of uv: from its first ``error:`` line on, bounded at line boundaries."""
    lines = [line.rstrip() for line in stderr if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("error")), 0)
    kept: list[str] = []
    for line in lines[start:]:
        if sum(len(k) + 1 for k in kept) + len(line) > MAX_MESSAGE:
            kept.append(f"... ({len(lines) - start - len(kept)} more lines)")
            break
        kept.append(line)
    return "\n".join(kept) or "uv failed without a message"


async def _follow(
    stream: asyncio.StreamReader, what: str, options: UvOptions, progress: Progress
) -> list[str]:
    """Every line of ``stream``, passed on as notices, with a notice per silent interval."""
    lines: list[str] = []
    started = time.monotonic()
    while True:
        try:
            async with asyncio.timeout(options.interval):
                raw = await stream.readline()
        except TimeoutError:
            elapsed = time.monotonic() - started
            await progress(Notice(f"{what}: still working ({elapsed:.0f} s)", data={"step": what}))
            continue
        if not raw:
            return lines
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if line.strip() and not line.startswith(_QUIET_PREFIXES):
            await progress(Notice(f"{what}: {line.strip()}", data={"step": what}))


async def run_uv(
    *args: str,
    what: str,
    error: type[ImageError] = ImageError,
    options: UvOptions = UvOptions(),
    progress: Progress = no_progress,
) -> None:
    """Run ``uv args``; on failure raise ``error`` with ``what`` and uv's message."""
    env = {**os.environ, "NO_COLOR": "1", "UV_PYTHON_DOWNLOADS": "never", **dict(options.env)}
    env.pop("VIRTUAL_ENV", None)  # the target is always named explicitly
    proc = await asyncio.create_subprocess_exec(
        uv_binary(),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None  # noqa: S101 - requested above
        async with asyncio.timeout(options.timeout):
            lines = await _follow(proc.stderr, what, options, progress)
            code = await proc.wait()
    except TimeoutError:
        raise error(f"{what}: uv did not finish within {options.timeout:g} s") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if code != 0:
        raise error(f"{what} failed:\n{readable(lines)}")

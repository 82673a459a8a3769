"""Build one image: lock the packages with hashes, create the venv, install, add our code.

Generic: the FL actors' images and the trained-model image are each a ``BuildRequest`` (a
name and a list of requirements). Steps, under a per-name lock so concurrent builds of one
name build once:

1. an image of that name exists: reuse it (no resolution);
2. ``uv pip compile --generate-hashes``: the lock; its digest (with the Python version and
   our env-side packages) names the content folder;
3. under a per-digest lock: content that exists is shared; else ``uv venv``,
   ``uv pip install --require-hashes``, copies of ``flops_utils`` and ``flops_env`` with a
   ``.pth`` file, and ``manifest.json`` last. A failure removes the folder.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import shutil
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flops_env
import flops_utils
from core.progress import Notice, Progress, no_progress
from images.errors import InstallError, ResolutionError
from images.locks import file_lock
from images.spec import requirement_name
from images.store import MANIFEST, Image, ImageStore, folder_size, write_json
from images.uvrun import UvOptions, run_uv

ENV_SIDE = (Path(flops_utils.__file__).parent, Path(flops_env.__file__).parent)
PTH = "_flops_env_side.pth"


@dataclass(frozen=True)
class BuildRequest:
    """What to build: an image name and the packages of its environment."""

    name: str
    requirements: Sequence[str]
    python: str = sys.executable  # the interpreter the environment is based on
    labels: Mapping[str, str] = field(default_factory=dict)  # repo, commit, kind, ... (manifest)
    title: str = ""  # how progress lines name the build (default: the image name)

    @property
    def what(self) -> str:
        """The build's name in progress lines."""
        return self.title or self.name


@dataclass(frozen=True)
class BuildResult:
    """The image, and whether it existed under this name already (nothing was done)."""

    image: Image
    reused: bool
    durations: Mapping[str, float]


def env_side_hash() -> str:
    """Hash of our env-side packages: a change to them is a new image."""
    digest = hashlib.sha256()
    for package in ENV_SIDE:
        for path in sorted(package.rglob("*.py")):
            digest.update(f"{package.name}/{path.relative_to(package)}".encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


async def python_version(python: str) -> str:
    """The version of the interpreter ``python`` (e.g. ``3.11.7``)."""
    if Path(python) == Path(sys.executable):
        return ".".join(map(str, sys.version_info[:3]))
    proc = await asyncio.create_subprocess_exec(
        python, "-c", "import platform; print(platform.python_version())",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise InstallError(f"{python} is not a working Python interpreter")
    return out.decode().strip()


def _install_env_side(content: Path) -> None:
    site = content / "site"
    for package in ENV_SIDE:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(package, site / package.name, ignore=ignore)
    [packages] = (content / "venv").glob("lib/python*/site-packages")
    relative = Path(*[".."] * len(packages.relative_to(content).parts)) / "site"
    (packages / PTH).write_text(f"{relative}\n")  # relative to site-packages: a movable image


def _packages(lock: str) -> dict[str, str]:
    pins = (line.split(" ", 1)[0] for line in lock.splitlines() if "==" in line)
    return {requirement_name(p): p.split("==", 1)[1] for p in pins if not p.startswith("#")}


class _Clock:
    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self._start = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.durations[name] = round(now - self._start, 3)
        self._start = now


async def _lock(request: BuildRequest, work: Path, options: UvOptions, progress: Progress) -> str:
    (work / "requirements.in").write_text("".join(f"{r}\n" for r in request.requirements))
    await run_uv(
        "pip", "compile", "--generate-hashes", "--no-header", "--no-annotate",
        "--python", request.python, "--no-python-downloads",
        "-o", str(work / "lock.txt"), str(work / "requirements.in"),
        what=f"Resolving the packages of the {request.what}", error=ResolutionError,
        options=options, progress=progress,
    )  # fmt: skip
    return (work / "lock.txt").read_text()


async def _install(
    request: BuildRequest, content: Path, lock: str, options: UvOptions, progress: Progress,
    clock: _Clock,
) -> None:  # fmt: skip
    (content / "lock.txt").write_text(lock)
    await run_uv(
        "venv", "--python", request.python, "--no-python-downloads", str(content / "venv"),
        what=f"Creating the environment of the {request.what}", error=InstallError,
        options=options, progress=progress,
    )  # fmt: skip
    clock.lap("venv")
    await run_uv(
        "pip", "install", "--require-hashes", "--python", str(content / "venv" / "bin" / "python"),
        "-r", str(content / "lock.txt"),
        what=f"Installing the packages of the {request.what}", error=InstallError,
        options=options, progress=progress,
    )  # fmt: skip
    clock.lap("install")
    _install_env_side(content)
    clock.lap("copy")


def _manifest(
    request: BuildRequest, digest: str, version: str, lock: str, content: Path, clock: _Clock
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "digest": digest,
        "built_as": request.name,
        "labels": dict(request.labels),
        "python": {"version": version, "base": request.python},
        "requirements": list(request.requirements),
        "lock": lock,
        "packages": _packages(lock),
        "env_side": env_side_hash(),
        "size_bytes": folder_size(content),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "durations": dict(clock.durations),
    }


async def build_image(
    request: BuildRequest,
    store: ImageStore,
    *,
    options: UvOptions = UvOptions(),  # noqa: B008 - frozen, safe to share
    progress: Progress = no_progress,
) -> BuildResult:
    """The image ``request.name``: reused when it exists, else built (once, however many ask)."""
    clock = _Clock()
    async with file_lock(store.name_lock(request.name)):
        existing = store.lookup(request.name)
        if existing is not None:
            return BuildResult(existing, True, {})
        work = store.root / f".work-{uuid.uuid4().hex}"
        work.mkdir(parents=True)
        try:
            lock = await _lock(request, work, options, progress)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        clock.lap("lock")
        version = await python_version(request.python)
        digest = hashlib.sha256(f"{version}\n{env_side_hash()}\n{lock}".encode()).hexdigest()
        async with file_lock(store.digest_lock(digest)):
            content = store.content(digest)
            if store.read_manifest(digest) is None:
                shutil.rmtree(content, ignore_errors=True)  # an unfinished earlier attempt
                content.mkdir(parents=True)
                try:
                    await _install(request, content, lock, options, progress, clock)
                    clock.durations["total"] = round(sum(clock.durations.values()), 3)
                    write_json(
                        content / MANIFEST,
                        _manifest(request, digest, version, lock, content, clock),
                    )
                except BaseException:
                    shutil.rmtree(content, ignore_errors=True)
                    raise
            else:
                await progress(
                    Notice(f"The {request.what} has the packages of an existing image: shared")
                )
            image = store.tag(request.name, digest, request.labels)
    return BuildResult(image, False, clock.durations)

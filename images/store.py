"""The images of a node: content folders by digest, names pointing at them, list and prune.

Layout under ``<data_dir>/images/``::

    sha256-<digest>/manifest.json   written last: a folder without it is unfinished
    sha256-<digest>/venv/           the environment (``venv/bin/python``)
    sha256-<digest>/site/           our env-side packages, on the path through a .pth file
    refs/<hash of name>.json        {"name", "digest", "created_at", "labels"}
    locks/                          one lock file per name and per digest

Several names may share one digest (a learner and an aggregator with the same packages).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from images.errors import ImageError
from images.locks import lock_path, try_lock, unlock

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Image:
    """A built image: its name, digest, folder and manifest."""

    name: str
    digest: str
    path: Path
    manifest: Mapping[str, Any]

    @property
    def python(self) -> Path:
        """The environment's interpreter: run the worker with it."""
        return self.path / "venv" / "bin" / "python"


@dataclass(frozen=True)
class ImageInfo:
    """One line of ``flops images``."""

    name: str
    digest: str
    size_bytes: int
    created_at: float
    age_seconds: float
    python: str
    projects: tuple[str, ...]


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a reader sees the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def folder_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class ImageStore:
    """The images under one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "images"
        self.locks = self.root / "locks"

    def content(self, digest: str) -> Path:
        """The folder of the image with ``digest``."""
        return self.root / f"sha256-{digest}"

    def ref_path(self, name: str) -> Path:
        """The file that points ``name`` at a digest."""
        return lock_path(self.root / "refs", name).with_suffix(".json")

    def name_lock(self, name: str) -> Path:
        """The lock file held while ``name`` is resolved or built."""
        return lock_path(self.locks, "name:" + name)

    def digest_lock(self, digest: str) -> Path:
        """The lock file held while the content of ``digest`` is built or removed."""
        return lock_path(self.locks, "digest:" + digest)

    def read_manifest(self, digest: str) -> dict[str, Any] | None:
        """The manifest of a finished image, or None."""
        try:
            data = json.loads((self.content(digest) / MANIFEST).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ImageError(f"image {digest[:12]}: unreadable manifest ({exc})") from exc
        return data if isinstance(data, dict) else None

    def _refs(self) -> list[dict[str, Any]]:
        folder = self.root / "refs"
        if not folder.is_dir():
            return []
        refs = []
        for path in sorted(folder.glob("*.json")):
            try:
                refs.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # a ref being replaced; the next listing sees it
        return refs

    def lookup(self, name: str) -> Image | None:
        """The finished image called ``name``, or None."""
        try:
            ref = json.loads(self.ref_path(name).read_text())
        except (OSError, ValueError):
            return None
        manifest = self.read_manifest(ref["digest"])
        if manifest is None:
            return None
        return Image(name, ref["digest"], self.content(ref["digest"]), manifest)

    def tag(self, name: str, digest: str, labels: Mapping[str, str]) -> Image:
        """Point ``name`` at the finished image ``digest``."""
        manifest = self.read_manifest(digest)
        if manifest is None:
            raise ImageError(f"image {digest[:12]} is not finished; cannot name it {name}")
        self.ref_path(name).parent.mkdir(parents=True, exist_ok=True)
        ref = {"name": name, "digest": digest, "created_at": time.time(), "labels": dict(labels)}
        write_json(self.ref_path(name), ref)
        return Image(name, digest, self.content(digest), manifest)

    def list_images(self, used_by: Mapping[str, Sequence[str]] | None = None) -> list[ImageInfo]:
        """Every named, finished image; ``used_by`` maps names to the projects using them."""
        now, infos = time.time(), []
        for ref in self._refs():
            manifest = self.read_manifest(ref["digest"])
            if manifest is None:
                continue
            infos.append(
                ImageInfo(
                    name=ref["name"],
                    digest=ref["digest"],
                    size_bytes=int(manifest.get("size_bytes", 0)),
                    created_at=float(ref["created_at"]),
                    age_seconds=now - float(ref["created_at"]),
                    python=str(manifest.get("python", {}).get("version", "")),
                    projects=tuple((used_by or {}).get(ref["name"], ())),
                )
            )
        return sorted(infos, key=lambda i: i.name)

    def prune(self, used_names: Set[str]) -> list[str]:
        """Remove names no project uses, then content no name points at; the names removed.

        Content being built (its digest lock held) is left alone.
        """
        removed = []
        for ref in self._refs():
            if ref["name"] not in used_names:
                self.ref_path(ref["name"]).unlink(missing_ok=True)
                removed.append(ref["name"])
        kept = {ref["digest"] for ref in self._refs()}
        for folder in sorted(self.root.glob("sha256-*")):
            digest = folder.name.removeprefix("sha256-")
            if digest in kept:
                continue
            fd = try_lock(self.digest_lock(digest))
            if fd is None:
                continue  # a build holds it
            try:
                if digest not in {ref["digest"] for ref in self._refs()}:  # named meanwhile?
                    shutil.rmtree(folder, ignore_errors=True)
            finally:
                unlock(fd)
        return sorted(removed)

"""ML repositories bundled with FLOps (written by us, following the contract).

They stand in for the predefined SLAs' GitHub repositories on machines that cannot reach
GitHub. A bundled repository has no git history: its "commit" is a hash of its files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "examples"
PREFIX = "bundled:"
_SKIP = {"__pycache__", ".git"}


def example(name: str) -> Path | None:
    """The bundled repository ``name``, if there is one."""
    path = EXAMPLES / name
    return path if name and "/" not in name and path.is_dir() else None


def names() -> list[str]:
    """Names of every bundled repository."""
    return sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and p.name not in _SKIP)


def files(root: Path) -> list[Path]:
    """The files of a plain repository folder, in a stable order (no caches, no .git)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not _SKIP & set(p.relative_to(root).parts) and p.suffix != ".pyc"
    )


def content_commit(root: Path) -> str:
    """A 40-hex stand-in for a commit sha: the hash of the folder's paths and contents."""
    digest = hashlib.sha256()
    for path in files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:40]

"""Which projects use which images on this node, as the builders recorded it.

A builder that hands images to a project writes ``<data_dir>/images/uses/<project>.json``
(``{"project", "user", "names"}``). ``flops images`` shows them; ``flops images prune``
asks the manager which of those projects still need their images (``cli.image_ops``) and
keeps every image a live (or unconfirmable) project uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from images.store import write_json

_PROJECT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Use:
    """One project's images."""

    project: str
    user: str
    names: tuple[str, ...]


def uses_dir(data_dir: Path) -> Path:
    """The folder of the use records."""
    return data_dir / "images" / "uses"


def record_use(data_dir: Path, project: str, user: str, names: Sequence[str]) -> None:
    """Record that ``project`` of ``user`` uses the images ``names`` too.

    A project's record grows: its actor images (the builder) and its trained-model image
    (the model-image builder) are recorded by two services, one after the other.
    """
    if not _PROJECT.match(project):
        raise ValueError(f"project id {project!r} cannot name a file")
    folder = uses_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{project}.json"
    try:
        known = _read(path).names
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or one being replaced
        known = ()
    merged = list(dict.fromkeys([*known, *names]))
    write_json(path, {"project": project, "user": user, "names": merged})


def _read(path: Path) -> Use:
    raw = json.loads(path.read_text())
    return Use(str(raw["project"]), str(raw["user"]), tuple(map(str, raw["names"])))


def read_uses(data_dir: Path) -> list[Use]:
    """Every use record (unreadable ones are skipped: being replaced)."""
    folder = uses_dir(data_dir)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append(_read(path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def forget_use(data_dir: Path, project: str) -> None:
    """Drop the record of a project that no longer needs its images."""
    if _PROJECT.match(project):
        (uses_dir(data_dir) / f"{project}.json").unlink(missing_ok=True)

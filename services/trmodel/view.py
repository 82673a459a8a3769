"""What ``flops model ID`` shows of an artifact, and ``--export DIR``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from services.trmodel.artifact import Artifact, Manifest, find_artifact, verify
from services.trmodel.errors import ArtifactError


class ModelFile(BaseModel):
    """One file of an artifact, relative to its folder."""

    model_config = ConfigDict(extra="forbid")
    path: str
    size: int


class ModelView(BaseModel):
    """``flops model ID``: the manifest, where the artifact is, and its files."""

    model_config = ConfigDict(extra="forbid")
    path: str
    size: int  # bytes, all files
    files: list[ModelFile]
    manifest: Manifest

    def summary(self) -> list[tuple[str, str]]:
        """The rows a person reads first, in order."""
        m = self.manifest
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(m.metrics.items()))
        return [
            ("project", m.project_id),
            ("run id", m.run_id),
            ("repository", f"{m.repository.url} @ {m.repository.commit}"),
            ("round", f"{m.round} of {m.rounds}"),
            ("metrics", metrics),
            ("data tags", ", ".join(m.data_tags)),
            ("flavor", f"{m.model.flavor} ({m.model.format}, {m.model.model_class})"),
            ("environment", f"{m.environment.image} ({m.environment.digest})"),
            ("created", m.created_at.isoformat(timespec="seconds")),
            ("path", self.path),
        ]


def _files(folder: Path) -> list[ModelFile]:
    found = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return [ModelFile(path=str(p.relative_to(folder)), size=p.stat().st_size) for p in found]


def view_of(artifact: Artifact) -> ModelView:
    """The view of an artifact already opened."""
    files = _files(artifact.path)
    return ModelView(
        path=str(artifact.path),
        size=sum(f.size for f in files),
        files=files,
        manifest=artifact.manifest,
    )


def show(root: Path, project_id: str) -> ModelView:
    """The view of a project's artifact under ``root`` (``models_dir(data_dir)``)."""
    return view_of(find_artifact(root, project_id))


def export(artifact: Artifact, dest: Path) -> Path:
    """Copy the artifact, checked against its manifest, to ``dest`` (new or empty folder).

    The copy appears whole or not at all: it is made beside ``dest`` and renamed.
    """
    verify(artifact)
    dest = dest.expanduser().absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArtifactError(f"{dest} exists and is not an empty folder; nothing was exported")
    if not dest.parent.is_dir():
        raise ArtifactError(f"{dest.parent} does not exist; nothing was exported")
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        shutil.copytree(artifact.path, staging, dirs_exist_ok=True)
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(f"cannot export to {dest}: {exc}") from exc
    return dest

"""The trained-model artifact: the best round's model, saved by its flavor, with a manifest.

One folder per project, ``<data_dir>/models/<project id>/``::

    manifest.json        written last: the artifact exists once this file does
    requirements.lock    the hash-locked requirements of the environment that saved it
    model/flavor.json    what flops_env.flavors saved (flavor, format, sha256, types, versions)
    model/model.skops    the model in its flavor's format (scikit-learn: skops, not pickle)

The model is saved by the aggregator's worker, in the user's environment, through a
``SaveModel`` callback (its ``save_model(path, flavor)`` op, which calls
``flops_env.flavors.save_model``); this module only checks what the worker wrote, adds the
manifest and installs the folder whole, or leaves nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flops_env.flavors import INFO_FILE, sha256_of
from services.trmodel.errors import ArtifactError

MANIFEST = "manifest.json"
MODEL_DIR = "model"
LOCK_FILE = "requirements.lock"

SaveModel = Callable[[Path, str], Awaitable[dict[str, Any]]]  # (folder, flavor) -> flavor.json


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Strict):
    """The model as saved in its environment: the content of ``model/flavor.json``."""

    flavor: str
    format: str
    file: str = Field(pattern=r"^[^/\\]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    trusted_types: list[str]
    libraries: dict[str, str]
    python: str
    model_class: str
    n_features_in: int | None = None


class Repository(_Strict):
    """The user's ML repository, at the one commit every stage used."""

    url: str
    commit: str


class Environment(_Strict):
    """The environment image that trained and saved the model, and its lock."""

    image: str
    digest: str
    python: str
    lock_sha256: str = ""  # sha256 of requirements.lock beside the manifest


class ArtifactMeta(_Strict):
    """What the aggregator knows when it saves the best model."""

    project_id: str = Field(pattern=r"^[0-9a-f]{24}$")
    customer: str
    repository: Repository
    flavor: str
    round: int = Field(ge=1)
    rounds: int = Field(ge=1)
    metrics: dict[str, float]
    data_tags: list[str]
    environment: Environment
    lock_text: str = ""  # the environment's requirements lock, copied into the artifact


class Manifest(_Strict):
    """``manifest.json``: where the model came from and how it was saved."""

    format_version: Literal[1] = 1
    run_id: str
    project_id: str
    customer: str
    repository: Repository
    round: int
    rounds: int
    metrics: dict[str, float]
    data_tags: list[str]
    environment: Environment
    model: ModelInfo
    created_at: datetime


class Artifact(_Strict):
    """An artifact on disk: its folder and its manifest."""

    path: Path
    manifest: Manifest

    @property
    def model_dir(self) -> Path:
        """The folder ``flops_env.flavors.load_model`` and the scoring server load."""
        return self.path / MODEL_DIR


def models_dir(data_dir: Path) -> Path:
    """Where the artifacts of a stack's projects live."""
    return data_dir / "models"


def run_id_of(project_id: str, round_: int, model_sha256: str) -> str:
    """The run id that names the trained-model image: stable for one project's saved model."""
    key = f"{project_id}/{round_}/{model_sha256}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


def _describe(staging: Path, answered: dict[str, Any]) -> ModelInfo:
    """The worker's answer, checked against what it wrote into the folder."""
    try:
        info = ModelInfo.model_validate(answered)
        written = ModelInfo.model_validate_json((staging / MODEL_DIR / INFO_FILE).read_bytes())
    except (OSError, ValidationError) as exc:
        raise ArtifactError(f"the saved model's description is invalid: {exc}") from exc
    model_file = staging / MODEL_DIR / info.file
    if written != info or not model_file.is_file() or sha256_of(model_file) != info.sha256:
        raise ArtifactError("the saved model does not match the description the worker returned")
    return info


def _complete(staging: Path, meta: ArtifactMeta, info: ModelInfo) -> Manifest:
    if info.flavor != meta.flavor:
        raise ArtifactError(f"the model was saved as {info.flavor!r}, the SLA says {meta.flavor!r}")
    lock_sha = ""
    if meta.lock_text:
        (staging / LOCK_FILE).write_text(meta.lock_text)
        lock_sha = hashlib.sha256(meta.lock_text.encode()).hexdigest()
    manifest = Manifest(
        run_id=run_id_of(meta.project_id, meta.round, info.sha256),
        environment=meta.environment.model_copy(update={"lock_sha256": lock_sha}),
        model=info,
        created_at=datetime.now(UTC),
        **meta.model_dump(exclude={"flavor", "environment", "lock_text"}),
    )
    (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _install(staging: Path, final: Path) -> None:
    """Put the complete folder in place, replacing an older artifact of the project."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _staging(root: Path, project_id: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{project_id}.", dir=root))


async def save_artifact(root: Path, meta: ArtifactMeta, save: SaveModel) -> Artifact:
    """Have ``save`` write the model, add the manifest, install ``root/<project id>``.

    On any failure (the worker's, a mismatch, a full disk) nothing is left behind and an
    older artifact of the project stays as it was.
    """
    staging = _staging(root, meta.project_id)
    try:
        answered = await save(staging / MODEL_DIR, meta.flavor)
        manifest = _complete(staging, meta, _describe(staging, answered))
        _install(staging, root / meta.project_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Artifact(path=root / meta.project_id, manifest=manifest)


def open_artifact(path: Path) -> Artifact:
    """The artifact in ``path``, its manifest validated."""
    try:
        raw = (path / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path} holds no trained-model artifact") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path / MANIFEST}: {exc}") from exc
    try:
        return Artifact(path=path, manifest=Manifest.model_validate_json(raw))
    except ValidationError as exc:
        raise ArtifactError(f"{path / MANIFEST} is not a valid manifest: {exc}") from exc


def find_artifact(root: Path, project_id: str) -> Artifact:
    """The artifact of a project, or an error that says the project has none."""
    if not (root / project_id / MANIFEST).is_file():
        raise ArtifactError(f"project {project_id} has no trained model (yet)")
    return open_artifact(root / project_id)


def artifact_lock(artifact: Artifact) -> str:
    """The saving environment's lock (``requirements.lock``), or ``""`` if it has none."""
    lock = artifact.path / LOCK_FILE
    return lock.read_text() if artifact.manifest.environment.lock_sha256 and lock.is_file() else ""


def verify(artifact: Artifact) -> None:
    """Check the model file and the lock against the sha256 the manifest recorded."""
    model = artifact.manifest.model
    path = artifact.model_dir / model.file
    if not path.is_file() or sha256_of(path) != model.sha256:
        raise ArtifactError(f"{path} is missing or differs from the manifest")
    lock_sha = artifact.manifest.environment.lock_sha256
    lock = artifact.path / LOCK_FILE
    if lock_sha and (not lock.is_file() or sha256_of(lock) != lock_sha):
        raise ArtifactError(f"{lock} is missing or differs from the manifest")

"""``show_model``: a project's trained model, for its owner only.

The artifact is on the node that trained it, in the stack's data dir, which the CLI of a
user may not be able to read (another account, another machine, the secure mode's 0700
data dir). The manager reads its manifest and file list for the project's owner; another
user's project is ``not found``, as for every other request (docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from manager.deps import Deps, RefusedError
from manager.lifecycle import own_project
from protocol.messages import ShowModel
from services.trmodel.artifact import MANIFEST, models_dir, open_artifact
from services.trmodel.errors import ArtifactError
from services.trmodel.facts import trained_artifact
from services.trmodel.view import ModelView, view_of


async def _artifact_path(project_id: str, deps: Deps) -> Path:
    """Where the training stage said it saved the model, else where this node keeps it."""
    now = await deps.store.progress(project_id)
    try:
        return Path(trained_artifact(now.outputs if now else {}))
    except ConfigError:
        return models_dir(Path(deps.stages.data_dir)) / project_id


async def show_model(user: str, req: ShowModel, deps: Deps) -> ModelView:
    """The view of ``user``'s project's artifact; ``not_found`` when it has none (yet)."""
    project = await own_project(user, req.project_id, deps)
    path = await _artifact_path(project.id, deps)
    if not (path / MANIFEST).is_file():
        raise RefusedError(
            "not_found",
            f"project {project.id} has no trained model on this node (it is "
            f"{project.state.value}; the model is saved at the end of its training)",
        )
    try:
        return view_of(open_artifact(path))
    except ArtifactError as exc:
        raise RefusedError("invalid_artifact", str(exc)) from exc

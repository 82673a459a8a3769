"""``show_model``: the owner sees the trained model the training stage reported; nobody else."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from manager import events, trained
from manager.deps import Deps, RefusedError
from protocol.messages import ShowModel
from services.trmodel.artifact import models_dir, save_artifact
from services.trmodel.facts import TRAINED
from tests.manager.test_handlers import deps
from tests.manager.test_post_training import said, started
from tests.models import save_like_the_worker
from tests.services.trmodel.conftest import meta

__all__ = ["deps"]
pytestmark = pytest.mark.timeout(30)


def ask(project_id: str) -> ShowModel:
    return ShowModel(request_id="r-00000001", reply_to="cli-1", project_id=project_id)


async def test_the_owner_sees_the_artifact_the_training_reported(
    deps: Deps, tmp_path: Path
) -> None:
    deps.stages = replace(deps.stages, data_dir=str(tmp_path / "node"))
    project_id = await started(deps)
    with pytest.raises(RefusedError, match="has no trained model on this node") as early:
        await trained.show_model("Admin", ask(project_id), deps)
    assert early.value.code == "not_found"
    artifact = await save_artifact(
        tmp_path / "elsewhere", meta(project_id), save_like_the_worker
    )  # where the stage said, not under this node's data dir
    data: dict[str, Any] = {"artifact": str(artifact.path)}
    await events.on_event("Admin", project_id, said(project_id, TRAINED, **data), deps)
    view = await trained.show_model("Admin", ask(project_id), deps)
    assert view.path == str(artifact.path) and view.manifest == artifact.manifest
    assert {f.path for f in view.files} >= {"manifest.json", "model/model.skops"}


async def test_another_users_project_is_not_found_as_one_that_does_not_exist(
    deps: Deps, tmp_path: Path
) -> None:
    deps.stages = replace(deps.stages, data_dir=str(tmp_path))
    project_id = await started(deps)
    await save_artifact(models_dir(tmp_path), meta(project_id), save_like_the_worker)
    assert (await trained.show_model("Admin", ask(project_id), deps)).manifest.project_id
    with pytest.raises(RefusedError) as theirs:
        await trained.show_model("bob", ask(project_id), deps)
    with pytest.raises(RefusedError) as nobodys:
        await trained.show_model("bob", ask("0" * 24), deps)
    assert theirs.value.code == nobodys.value.code == "not_found"
    assert str(theirs.value) == str(nobodys.value).replace("0" * 24, project_id)

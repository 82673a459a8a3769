import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flops_env.flavors import load_model
from services.trmodel.artifact import (
    LOCK_FILE,
    MANIFEST,
    Artifact,
    find_artifact,
    open_artifact,
    run_id_of,
    save_artifact,
    verify,
)
from services.trmodel.errors import ArtifactError
from tests.models import digits, fitted_model, save_like_the_worker
from tests.services.trmodel.conftest import LOCK, PROJECT, meta

pytestmark = pytest.mark.timeout(60)


async def test_the_artifact_holds_the_model_the_lock_and_a_complete_manifest(
    artifact: Artifact,
) -> None:
    assert artifact.path.name == PROJECT
    assert sorted(p.name for p in artifact.path.iterdir()) == sorted([LOCK_FILE, MANIFEST, "model"])
    m = json.loads((artifact.path / MANIFEST).read_text())
    assert m["project_id"] == PROJECT
    assert m["repository"] == {
        "url": "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn",
        "commit": "f" * 40,
    }
    assert (m["round"], m["rounds"]) == (2, 3)
    assert m["metrics"] == {"accuracy": 0.85, "loss": 0.61}
    assert m["data_tags"] == ["mnist"]
    assert m["environment"]["lock_sha256"] == hashlib.sha256(LOCK.encode()).hexdigest()
    assert m["model"]["flavor"] == "sklearn"
    assert m["model"]["format"] == "skops"
    assert m["model"]["file"] == "model.skops"
    assert m["run_id"] == run_id_of(PROJECT, 2, m["model"]["sha256"])
    assert m["created_at"].endswith("Z")
    assert (artifact.path / LOCK_FILE).read_text() == LOCK
    verify(artifact)
    assert open_artifact(artifact.path) == artifact
    assert find_artifact(artifact.path.parent, PROJECT) == artifact


async def test_the_saved_model_predicts_like_the_trained_one(artifact: Artifact) -> None:
    held = digits().x_held
    loaded = load_model(artifact.model_dir)
    assert np.array_equal(loaded.model.predict(held), fitted_model().predict(held))


async def test_a_failing_save_leaves_nothing_and_keeps_the_older_artifact(
    artifact: Artifact,
) -> None:
    root = artifact.path.parent
    before = (artifact.path / MANIFEST).read_text()

    async def crashing(folder: Path, flavor: str) -> dict[str, Any]:
        await save_like_the_worker(folder, flavor)
        raise RuntimeError("the worker died")

    with pytest.raises(RuntimeError, match="the worker died"):
        await save_artifact(root, meta(round=3), crashing)
    assert sorted(p.name for p in root.iterdir()) == [PROJECT]
    assert (artifact.path / MANIFEST).read_text() == before


async def test_a_save_whose_answer_does_not_match_the_files_is_refused(tmp_path: Path) -> None:
    async def lying(folder: Path, flavor: str) -> dict[str, Any]:
        info = await save_like_the_worker(folder, flavor)
        return {**info, "sha256": "0" * 64}

    with pytest.raises(ArtifactError, match="does not match the description"):
        await save_artifact(tmp_path, meta(), lying)
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240 - a test looks


async def test_a_save_answering_garbage_is_refused(tmp_path: Path) -> None:
    async def garbage(folder: Path, flavor: str) -> dict[str, Any]:
        await save_like_the_worker(folder, flavor)
        return {"flavor": "sklearn"}

    with pytest.raises(ArtifactError, match="description is invalid"):
        await save_artifact(tmp_path, meta(), garbage)
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240 - a test looks


async def test_a_model_saved_with_another_flavor_than_the_sla_s_is_refused(
    tmp_path: Path,
) -> None:
    async def other(folder: Path, flavor: str) -> dict[str, Any]:
        return await save_like_the_worker(folder, "sklearn")

    with pytest.raises(ArtifactError, match="saved as 'sklearn', the SLA says 'keras'"):
        await save_artifact(tmp_path, meta(flavor="keras"), other)


async def test_a_later_save_replaces_the_artifact_whole(artifact: Artifact) -> None:
    again = await save_artifact(artifact.path.parent, meta(round=3), save_like_the_worker)
    assert again.manifest.round == 3
    assert open_artifact(again.path).manifest.round == 3
    assert sorted(p.name for p in artifact.path.parent.iterdir()) == [PROJECT]


async def test_tampering_is_found_by_verify(artifact: Artifact) -> None:
    (artifact.model_dir / "model.skops").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="differs from the manifest"):
        verify(artifact)


def test_a_missing_or_broken_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="has no trained model"):
        find_artifact(tmp_path, PROJECT)
    with pytest.raises(ArtifactError, match="holds no trained-model artifact"):
        open_artifact(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format_version": 1}')
    with pytest.raises(ArtifactError, match="not a valid manifest"):
        open_artifact(tmp_path)

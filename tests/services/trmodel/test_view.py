import json
from pathlib import Path

import pytest

from flops_env.flavors import load_model
from services.trmodel.artifact import MANIFEST, Artifact, open_artifact
from services.trmodel.errors import ArtifactError
from services.trmodel.view import ModelView, export, show
from tests.services.trmodel.conftest import PROJECT

pytestmark = pytest.mark.timeout(60)


async def test_show_gives_a_typed_view_that_round_trips_as_json(artifact: Artifact) -> None:
    view = show(artifact.path.parent, PROJECT)
    assert view.manifest == artifact.manifest
    assert view.path == str(artifact.path)
    names = [f.path for f in view.files]
    assert names == ["manifest.json", "model/flavor.json", "model/model.skops", "requirements.lock"]
    assert view.size == sum(f.size for f in view.files)
    assert ModelView.model_validate_json(view.model_dump_json()) == view
    rows = dict(view.summary())
    assert rows["round"] == "2 of 3"
    assert rows["metrics"] == "accuracy 0.85, loss 0.61"
    assert rows["run id"] == artifact.manifest.run_id


def test_show_of_a_project_without_a_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=f"project {PROJECT} has no trained model"):
        show(tmp_path, PROJECT)


async def test_export_copies_a_loadable_artifact(artifact: Artifact, tmp_path: Path) -> None:
    dest = export(artifact, tmp_path / "out")
    copy = open_artifact(dest)
    assert copy.manifest == artifact.manifest
    assert load_model(copy.model_dir).info["sha256"] == artifact.manifest.model.sha256
    (tmp_path / "empty").mkdir()
    assert export(artifact, tmp_path / "empty") == tmp_path / "empty"


async def test_export_refuses_a_folder_with_files_and_leaves_it_as_it_was(
    artifact: Artifact, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine").write_text("keep")
    with pytest.raises(ArtifactError, match="not an empty folder; nothing was exported"):
        export(artifact, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine"]
    with pytest.raises(ArtifactError, match="does not exist"):
        export(artifact, tmp_path / "no" / "such")


async def test_export_refuses_an_artifact_that_differs_from_its_manifest(
    artifact: Artifact, tmp_path: Path
) -> None:
    manifest = json.loads((artifact.path / MANIFEST).read_text())
    (artifact.model_dir / manifest["model"]["file"]).write_bytes(b"changed")
    with pytest.raises(ArtifactError, match="differs from the manifest"):
        export(artifact, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # noqa: ASYNC240

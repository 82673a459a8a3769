"""MLflow tracking against a real MLflow (mlflow-skinny, ~90 MB, not the 850 MB mlflow)."""

import sqlite3
import sys
from pathlib import Path

import pytest

from images.build import BuildRequest, build_image
from images.store import ImageStore
from services.tracking.client import TrackingError, TrackingSettings, open_tracker, store_dir
from services.tracking.session import WARNING, tracking_beside

PROJECT = "0123456789abcdef01234567"
# mlflow-skinny leaves out the SQL store's own dependencies; these three run sqlite:///
MLFLOW = ["mlflow-skinny", "sqlalchemy", "alembic"]


@pytest.mark.timeout(600)
async def test_rounds_and_the_model_are_logged_as_the_original_did(tmp_path: Path) -> None:
    built = await build_image(BuildRequest("t/aggregator:1", MLFLOW), ImageStore(tmp_path))
    python = built.image.python
    data_dir = tmp_path / "data"
    artifact = tmp_path / "artifact"
    (artifact / "model").mkdir(parents=True)
    (artifact / "manifest.json").write_text("{}")
    (artifact / "model" / "model.skops").write_bytes(b"model")
    async with open_tracker(python, PROJECT, data_dir, TrackingSettings()) as tracker:
        first = await tracker.log_round(1, {"loss": 0.9, "accuracy": 0.7})
        second = await tracker.log_round(2, {"loss": 0.6, "accuracy": 0.85})
        assert await tracker.log_model(2, artifact) == second
        experiment = tracker.experiment_id
    with sqlite3.connect(store_dir(data_dir) / "mlflow.db") as db:
        (name,) = db.execute(
            "SELECT name FROM experiments WHERE experiment_id = ?", (experiment,)
        ).fetchone()
        runs = dict(db.execute("SELECT run_uuid, name FROM runs").fetchall())
        metrics = set(db.execute("SELECT run_uuid, key, value FROM metrics").fetchall())
    assert name == f"FLOps Project {PROJECT}"
    assert runs == {first: "FLOps FL round 1", second: "FLOps FL round 2"}
    assert metrics == {
        (first, "loss", 0.9), (first, "accuracy", 0.7),
        (second, "loss", 0.6), (second, "accuracy", 0.85),
    }  # fmt: skip
    logged = store_dir(data_dir) / "artifacts" / second / "artifacts" / "model"
    assert (logged / "model" / "model.skops").read_bytes() == b"model"
    assert (logged / "manifest.json").exists()


@pytest.mark.timeout(60)
async def test_an_environment_without_mlflow_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        TrackingError, match="MLflow tracking cannot start: No module named 'mlflow'"
    ):
        async with open_tracker(Path(sys.executable), PROJECT, tmp_path, TrackingSettings()):
            pass


@pytest.mark.timeout(60)
async def test_a_tracking_failure_is_one_warning_and_never_holds_the_training(
    tmp_path: Path,
) -> None:
    warnings: list[str] = []

    async def warn(text: str) -> None:
        warnings.append(text)

    on = TrackingSettings(mlflow_tracking=True)
    python = Path(sys.executable)  # no mlflow here
    async with tracking_beside(python, PROJECT, tmp_path, on, warn) as track:
        for number in (1, 2, 3):
            track.round(number, {"loss": 0.5})  # queued: never waits for MLflow
        track.model(3, tmp_path)
    reason = "MLflow tracking cannot start: No module named 'mlflow'"
    assert warnings == [WARNING.format(reason=reason)]
    off = tmp_path / "off"
    async with tracking_beside(python, PROJECT, off, TrackingSettings(), warn) as track:
        track.round(1, {"loss": 0.5})  # off: nothing starts, nothing is said
    assert len(warnings) == 1 and not off.exists()

"""MLflow tracking on the real stack: the seed SLA with ``mlflow_tracking`` off, then on.

The stack runs in this process against the test's mosquitto, with every stage; the CLI is
a subprocess; uv builds the bundled example's images and installs mlflow-skinny (~90 MB,
once per uv cache) into the tracked aggregator's. Off: no image of the node has anything
of MLflow and no store exists. On: the store (SQLite under the data dir) has the
experiment ``FLOps Project <id>`` and the runs ``FLOps FL round 1..3`` with the rounds'
metrics, the best round's run has the model, only the aggregator's and the trained model's
images have MLflow.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from images.store import MANIFEST
from services.tracking.client import store_dir
from services.tracking.session import WARNING
from tests.conftest import BrokerProcess
from tests.stack.conftest import seed_stack
from tests.stack.test_post_training import flops

pytestmark = pytest.mark.timeout(900)  # two whole pipelines and an mlflow-skinny install
MLFLOW_PACKAGES = {"mlflow", "mlflow-skinny"}


def image_packages(data_dir: Path) -> dict[str, set[str]]:
    """The installed packages of every image of the node, by the names it was built as."""
    found: dict[str, set[str]] = {}
    for manifest in (data_dir / "images").glob(f"sha256-*/{MANIFEST}"):
        doc = json.loads(manifest.read_text())
        site = list(manifest.parent.glob("venv/lib/python*/site-packages/mlflow"))
        found[doc["built_as"]] = set(doc["packages"]) | ({"mlflow"} if site else set())
    return found


def data_of(log: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in log if e["data"] and e["data"]["type"] == kind]


async def seed_project(env: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    code, started, err = await flops(env, "project", "--project-sla-file-name", "seed.json")
    assert code == 0 and started["state"] == "COMPLETED", (started, err)
    return started["project"]["id"], started["log"]


async def test_tracking_logs_the_rounds_and_the_model_and_only_then_is_mlflow_installed(
    tmp_path: Path, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    fixed = {"identifier": "tracking"}
    async with seed_stack(tmp_path, "off", mosquitto, monkeypatch, fixed) as env:
        code, _, err = await flops(env, "mock_data", "--mock-sla-file-name", "mnist_multi.json")
        assert code == 0, err
        _, log = await seed_project(env)
        assert data_of(log, "inference_ready"), [e["text"] for e in log]
    images = image_packages(data_dir)
    assert len(images) == 3, images  # the learner's, the aggregator's, the trained model's
    assert all(not packages & MLFLOW_PACKAGES for packages in images.values()), images
    assert not store_dir(data_dir).exists()

    tracked = {**fixed, "mlflow_tracking": True}
    async with seed_stack(tmp_path, "on", mosquitto, monkeypatch, tracked) as env:
        project_id, log = await seed_project(env)
    texts = [e["text"] for e in log]
    assert not [t for t in texts if t.startswith(WARNING.split("{", 1)[0])], texts
    (ready,) = data_of(log, "images_ready")
    aggregator, learner = ready["values"]["aggregator"], ready["values"]["learner"]
    assert aggregator["name"].endswith("-mlflow") and ready["values"]["reused"] is False
    (model_image,) = data_of(log, "model_image_ready")
    images = image_packages(data_dir)
    assert {"mlflow-skinny", "sqlalchemy", "alembic"} <= images[aggregator["name"]]
    assert "mlflow-skinny" in images[model_image["values"]["image"]]
    assert not images[learner["name"]] & MLFLOW_PACKAGES  # the learner's: reused, without
    without = [n for n in images if n not in (aggregator["name"], model_image["values"]["image"])]
    assert len(without) == 3 and all(not images[n] & MLFLOW_PACKAGES for n in without)

    rounds = {r["round"]: r for r in data_of(log, "round")}
    (trained,) = data_of(log, "trained")
    with sqlite3.connect(store_dir(data_dir) / "mlflow.db") as db:
        experiments = db.execute("SELECT experiment_id, name FROM experiments").fetchall()
        runs = dict(db.execute("SELECT name, run_uuid FROM runs").fetchall())
        metrics = db.execute("SELECT run_uuid, key, value, step FROM metrics").fetchall()
    assert f"FLOps Project {project_id}" in {name for _, name in experiments}
    assert sorted(runs) == [f"FLOps FL round {n}" for n in (1, 2, 3)]
    for number, data in rounds.items():
        logged = {k: v for run, k, v, step in metrics if run == runs[f"FLOps FL round {number}"]}
        assert logged == pytest.approx({"loss": data["loss"], "accuracy": data["accuracy"]})
    best = runs[f"FLOps FL round {trained['values']['round']}"]
    logged_model = store_dir(data_dir) / "artifacts" / best / "artifacts" / "model"
    assert (logged_model / "manifest.json").is_file()
    assert (logged_model / "model" / "model.skops").is_file()
    await a_store_it_cannot_use_is_one_warning(tmp_path, mosquitto, monkeypatch)


async def a_store_it_cannot_use_is_one_warning(
    tmp_path: Path, mosquitto: BrokerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tracking URI MLflow cannot use: one WARNING, and the project completes as ever."""
    wrong = {"identifier": "tracking", "mlflow_tracking": True, "mlflow_tracking_uri": "no://"}
    async with seed_stack(tmp_path, "wrong", mosquitto, monkeypatch, wrong) as env:
        _, log = await seed_project(env)  # COMPLETED, served
    warnings = [e["text"] for e in log if e["level"] == "warning"]
    said = [t for t in warnings if t.startswith("MLflow tracking failed: ")]
    assert len(said) == 1 and "no://" in said[0], warnings
    assert data_of(log, "inference_ready")

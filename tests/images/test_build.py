"""Real builds with uv from the package index (uv's default cache, warm across runs)."""

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.progress import Recorder
from flops_utils._contract import data_environment
from images.actors import REUSED, build_actor_images
from images.build import BuildRequest, build_image
from images.errors import ResolutionError
from images.store import Image, ImageStore
from mlrepos.contract import CONDA_FILE
from mlrepos.errors import ContractError
from mlrepos.sources import RepoSnapshot, resolve_repo
from nodedata.assign import assign_tags
from nodedata.mock import load_mock_sla, prepare_mock_data

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_STYLE = ROOT / "tests" / "fixtures" / "ml_repos" / "numpy_softmax"
SEED_URL = "https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn"
BUNDLED = {SEED_URL: "bundled:flops_ml_repo_mnist_sklearn"}

# Runs a repository through its contract, as a learner's worker will.
CONTRACT = """
import json
from model_manager import ModelManager
manager = ModelManager()
shapes = [list(p.shape) for p in manager.get_model_parameters()]
manager.set_model_data()
fitted = manager.fit_model()
manager.set_model_parameters(manager.get_model_parameters())
loss, accuracy, evaluated = manager.evaluate_model()
try:
    import pydantic
    leaked = True
except ImportError:
    leaked = False
print(json.dumps({"shapes": shapes, "fitted": fitted, "evaluated": evaluated,
                  "loss": float(loss), "accuracy": float(accuracy), "leaked": leaked}))
"""


def run_contract(
    image: Image, repo: Path, data_dir: Path, learner: int, learners: int
) -> dict[str, object]:
    env = {
        "PATH": os.environ["PATH"],
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        **data_environment(
            data_dir, ["mnist"], assign_tags(data_dir, ["mnist"], learner, learners)
        ),
    }
    done = subprocess.run(
        [str(image.python), "-c", CONTRACT],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("node")
    asyncio.run(prepare_mock_data(load_mock_sla("mnist_multi")[0], data_dir))
    return data_dir


@pytest.mark.timeout(300)
async def test_the_example_repo_builds_cold_then_is_reused_and_runs_repos_in_the_originals_style(
    node: Path,
) -> None:
    snapshot = await resolve_repo(SEED_URL, node, repo_sources=BUNDLED)
    store = ImageStore(node)
    progress = Recorder()
    built = await build_actor_images(snapshot, store, registry="localhost:5073", progress=progress)
    assert not built.reused
    assert (
        built.learner.name
        == f"localhost:5073/malyuk-a/flops_ml_repo_mnist_sklearn/learner:{snapshot.commit}"
    )
    texts = progress.texts()
    assert f"Start building {built.learner.name} image (This can take a while)" in texts
    assert f"Successfully finished building new '{built.aggregator.name}' image" in texts
    assert any(t.startswith("Builder durations: full_builder_process") for t in texts)
    assert any("pins python=3.10.14" in t for t in progress.texts("warning"))
    manifest = built.learner.manifest
    assert "mlflow" not in manifest["packages"] and manifest["packages"]["scikit-learn"] == "1.4.2"
    assert "--hash=sha256:" in manifest["lock"] and manifest["size_bytes"] > 10_000_000
    assert set(manifest["durations"]) >= {"lock", "venv", "install", "copy", "total"}

    again = Recorder()
    reused = await build_actor_images(snapshot, store, registry="localhost:5073", progress=again)
    assert reused.reused and again.texts() == [REUSED]
    assert reused.learner.digest == built.learner.digest

    example = run_contract(built.learner, snapshot.path, node, 0, 2)
    assert example["shapes"] == [[10, 784], [10]] and not example["leaked"]
    assert example["fitted"] == 958 and example["evaluated"] == 240  # partitions 0 and 2: 80/20
    original = run_contract(built.learner, ORIGINAL_STYLE, node, 1, 2)
    assert original["shapes"] == [[784, 10], [10]]
    assert [original["fitted"], original["evaluated"]] == [479, 120]  # partition 1: 80/20
    assert float(str(original["accuracy"])) > 0.5


@pytest.mark.timeout(300)
async def test_two_concurrent_builds_of_one_image_build_once(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    progress = Recorder()
    request = BuildRequest("localhost:5073/u/r/learner:abc", ["numpy==1.26.4"])
    first, second = await asyncio.gather(
        build_image(request, store, progress=progress),
        build_image(request, store, progress=progress),
    )
    assert sorted([first.reused, second.reused]) == [False, True]
    assert first.image.digest == second.image.digest
    installs = [t for t in progress.texts() if t.startswith("Installing") and ": Installed " in t]
    assert len(installs) == 1, installs
    assert len(list(store.root.glob("sha256-*"))) == 1


@pytest.mark.timeout(300)
async def test_two_projects_of_one_repository_at_once_build_its_images_once(tmp_path: Path) -> None:
    snapshot = await resolve_repo(SEED_URL, tmp_path, repo_sources=BUNDLED)
    store = ImageStore(tmp_path)
    progress = Recorder()
    one, two = await asyncio.gather(
        *(build_actor_images(snapshot, store, registry="r", progress=progress) for _ in range(2))
    )
    assert one.learner.digest == two.learner.digest
    assert one.aggregator.digest == two.aggregator.digest  # (it has skops: its own image)
    installs = [t for t in progress.texts() if t.startswith("Installing") and ": Installed " in t]
    assert len(installs) == 2, installs  # each image once


@pytest.mark.timeout(120)
async def test_an_unresolvable_dependency_fails_with_the_resolvers_message(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(ResolutionError) as err:
        await build_image(BuildRequest("r/u/x/learner:1", ["numpy==9.9.9"]), store)
    message = str(err.value)
    assert "No solution found when resolving dependencies" in message
    assert "numpy==9.9.9" in message and "unsatisfiable" in message
    assert store.lookup("r/u/x/learner:1") is None
    assert not list(store.root.glob("sha256-*")) and not list(store.root.glob(".work-*"))


@pytest.mark.timeout(60)
async def test_missing_contract_files_fail_before_anything_is_built(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ORIGINAL_STYLE, repo)
    (repo / CONDA_FILE).unlink()
    snapshot = RepoSnapshot("file:///x/u/repo", str(repo), "c" * 40, "u", "repo", repo)
    store = ImageStore(tmp_path)
    with pytest.raises(ContractError, match=r"^conda\.yaml not found in the cloned repository\.$"):
        await build_actor_images(snapshot, store, registry="r")
    assert not store.root.exists()


@pytest.mark.timeout(300)
async def test_list_and_prune(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    request = BuildRequest("r/u/x/learner:1", ["numpy==1.26.4"])
    await build_image(request, store)
    await build_image(BuildRequest("r/u/x/aggregator:1", request.requirements), store)
    listed = store.list_images({"r/u/x/learner:1": ["p1"]})
    assert [(i.name, i.projects) for i in listed] == [
        ("r/u/x/aggregator:1", ()),
        ("r/u/x/learner:1", ("p1",)),
    ]
    assert listed[0].digest == listed[1].digest and listed[0].python.startswith("3.")
    assert store.prune({"r/u/x/learner:1"}) == ["r/u/x/aggregator:1"]
    assert len(list(store.root.glob("sha256-*"))) == 1  # still used by the learner
    assert store.prune(set()) == ["r/u/x/learner:1"]
    assert not list(store.root.glob("sha256-*")) and store.list_images() == []

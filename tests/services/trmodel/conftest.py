import asyncio
from pathlib import Path

import pytest

from services.trmodel.artifact import (
    Artifact,
    ArtifactMeta,
    Environment,
    Repository,
    save_artifact,
)
from tests.models import save_like_the_worker

PROJECT = "0123456789abcdef01234567"
LOCK = "scikit-learn==1.9.1 \\\n    --hash=sha256:00\nskops==0.16.0 \\\n    --hash=sha256:11\n"


def meta(project_id: str = PROJECT, **changes: object) -> ArtifactMeta:
    base = ArtifactMeta(
        project_id=project_id,
        customer="Admin",
        repository=Repository(
            url="https://github.com/Malyuk-A/flops_ml_repo_mnist_sklearn", commit="f" * 40
        ),
        flavor="sklearn",
        round=2,
        rounds=3,
        metrics={"accuracy": 0.85, "loss": 0.61},
        data_tags=["mnist"],
        environment=Environment(
            image="localhost:5073/malyuk-a/flops_ml_repo_mnist_sklearn/aggregator:" + "f" * 40,
            digest="sha256:" + "a" * 64,
            python="3.11.7",
        ),
        lock_text=LOCK,
    )
    return base.model_copy(update=changes)


@pytest.fixture
async def artifact(tmp_path: Path) -> Artifact:
    return await save_artifact(tmp_path / "models", meta(), save_like_the_worker)


@pytest.fixture(scope="module")
def shared_artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    root = tmp_path_factory.mktemp("models")
    return asyncio.run(save_artifact(root, meta(), save_like_the_worker))

from importlib.metadata import version

import pytest

from services.trmodel.artifact import Artifact, artifact_lock
from services.trmodel.errors import ArtifactError
from services.trmodel.image import (
    SERVING_PACKAGES,
    build_trained_model_image,
    image_name,
    logged_with,
    packages_for,
)

pytestmark = pytest.mark.timeout(60)


def test_the_image_is_named_as_the_original_named_it() -> None:
    assert (
        image_name("localhost:5073", "Admin", "abc123")
        == "localhost:5073/admin/trained_model:abc123"
    )
    assert image_name("r", "A B/c", "x") == "r/a-b-c/trained_model:x"


async def test_the_packages_are_the_flavor_s_libraries_as_saved_plus_the_web_stack(
    artifact: Artifact,
) -> None:
    packages = packages_for(artifact.manifest)
    assert packages.requirements == [
        f"{name}=={version(name)}"
        for name in ("scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl", "skops")
    ]
    assert packages.extra_packages == list(SERVING_PACKAGES)


async def test_a_manifest_without_the_versions_serving_needs_is_refused(
    artifact: Artifact,
) -> None:
    model = artifact.manifest.model.model_copy(update={"libraries": {"scikit-learn": "1.4.2"}})
    manifest = artifact.manifest.model_copy(update={"model": model})
    with pytest.raises(ArtifactError, match="recorded no version of numpy, skops"):
        packages_for(manifest)


async def test_the_generic_builder_gets_the_list_and_the_name(artifact: Artifact) -> None:
    calls: list[tuple[list[str], list[str], str]] = []

    class Built:
        name = "built"
        python = artifact.path

    async def build(requirements: list[str], extra: list[str], name: str) -> Built:
        calls.append((requirements, extra, name))
        return Built()

    built = await build_trained_model_image(build, artifact.manifest, "reg:1")
    assert built.name == "built"
    ((requirements, extra, name),) = calls
    assert name == f"reg:1/admin/trained_model:{artifact.manifest.run_id}"
    assert requirements == packages_for(artifact.manifest).requirements
    assert extra == list(SERVING_PACKAGES)


async def test_a_model_logged_to_mlflow_gets_the_same_mlflow_in_its_image(
    artifact: Artifact,
) -> None:
    lock = (
        "alembic==1.13.1 \\\n    --hash=sha256:00\n"
        "mlflow-skinny==2.12.1 \\\n    --hash=sha256:11\n"
        "setuptools==80.9.0 \\\n    --hash=sha256:22\n"
    )
    assert logged_with(lock) == ["mlflow-skinny==2.12.1", "setuptools==80.9.0"]
    assert logged_with(artifact_lock(artifact)) == []  # saved without MLflow: none
    tracked = packages_for(artifact.manifest, lock).requirements
    assert tracked == [*packages_for(artifact.manifest).requirements, *logged_with(lock)]

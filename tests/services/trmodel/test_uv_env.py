"""The trained model served from its own environment, built by images.build_image as the
model_image stage builds it."""

import subprocess
from pathlib import Path

import pytest

from flops_env.flavors import load_model
from images.build import BuildRequest, build_image
from images.store import ImageStore
from services.trmodel.artifact import Artifact
from services.trmodel.image import packages_for
from services.trmodel.predict import payload_from_array, predict
from services.trmodel.service import InferenceConfig
from tests.models import digits
from tests.services.trmodel.test_service import Notices, serving

# a cold package cache downloads scikit-learn, scipy and numpy once (~60 MB)
pytestmark = pytest.mark.timeout(600)


async def test_the_image_s_package_list_serves_the_artifact(
    shared_artifact: Artifact, tmp_path: Path
) -> None:
    packages = packages_for(shared_artifact.manifest)
    wanted = [*packages.requirements, *packages.extra_packages]
    request = BuildRequest("test/trained_model:uv", wanted)
    python = (await build_image(request, ImageStore(tmp_path / "data"))).image.python
    # only the env-side package of ours is there: no control code, no pydantic
    probe = "import flops_env.serve\ntry:\n import services\nexcept ImportError: print('isolated')"
    out = subprocess.run(  # noqa: ASYNC221 - a short probe before the service starts
        [python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "isolated"

    notices = Notices()
    cfg = InferenceConfig(
        python=python, model_dir=shared_artifact.model_dir, state_dir=tmp_path / "state"
    )
    async with serving(cfg, notices):
        ready = await notices.ready()
        held = digits().x_held
        got = await predict(ready.data["url"], payload_from_array(held, "held-out digits"))
    local = load_model(shared_artifact.model_dir).model.predict(held).tolist()
    assert got == local

"""The trained model's environment image: its name, what it installs, how it is built.

The image holds only what serving the model needs: the flavor's libraries at the exact
versions of the environment that saved the model (recorded in the artifact's
``model/flavor.json``; scikit-learn: scikit-learn, scipy, numpy, joblib, threadpoolctl and
skops), plus the scoring server's web stack, and MLflow when the model was logged to it.
The generic image builder (``images/``) locks and installs that list like any other image,
and the image gets ``flops_env`` so ``python -m flops_env.serve`` runs in it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flops_env.flavors import flavor_of
from images.spec import requirement_name
from services.trmodel.artifact import Manifest
from services.trmodel.errors import ArtifactError

# The scoring server (flops_env/serve.py): an ASGI app on uvicorn's pure-Python h11 server,
# and orjson, which parses the JSON of an inference request (flops_env/scoring.py).
SERVING_PACKAGES = ("starlette>=0.37", "uvicorn>=0.30", "orjson>=3.9")

START_TEXT = (
    "Start handling FL post training. Preparing to build image based on best trained model."
)
DEPLOY_TEXT = "Start handling FL post training step: Deployment of trained model image."


def image_name(registry: str, customer: str, run_id: str) -> str:
    """``<registry>/<customer, lower case>/trained_model:<run id>``, as the original named it."""
    user = re.sub(r"[^a-z0-9._-]", "-", customer.lower()) or "customer"
    return f"{registry}/{user}/trained_model:{run_id}"


@dataclass(frozen=True)
class ImagePackages:
    """What the builder installs: the model's pinned libraries, and ours."""

    requirements: list[str]  # the flavor's libraries, pinned as in the saving environment
    extra_packages: list[str]  # the scoring server's web stack


def logged_with(lock: str) -> list[str]:
    """MLflow's pins in the saving environment's lock, when it had MLflow (tracking on).

    The original logged the model to MLflow and served it with MLflow; a model that was
    logged so gets the same ``mlflow-skinny`` (and the setuptools it imports) in its image.
    """
    pins = {requirement_name(p): p for p in (line.split(" ", 1)[0] for line in lock.splitlines())}
    if "mlflow-skinny" not in pins:
        return []
    return [pins[name] for name in ("mlflow-skinny", "setuptools") if "==" in pins.get(name, "")]


def packages_for(manifest: Manifest, lock: str = "") -> ImagePackages:
    """The trained-model image's package list for the model of ``manifest``.

    ``lock``: the artifact's ``requirements.lock`` (the saving environment's), for MLflow.
    """
    wanted = flavor_of(manifest.model.flavor).libraries
    saved = manifest.model.libraries
    missing = [name for name in wanted if name not in saved and name in ("skops", "numpy")]
    if missing:
        raise ArtifactError(f"the saving environment recorded no version of {', '.join(missing)}")
    pins = [f"{name}=={saved[name]}" for name in wanted if name in saved]
    return ImagePackages(
        requirements=pins + logged_with(lock), extra_packages=list(SERVING_PACKAGES)
    )


class BuiltImage(Protocol):
    """What the trained-model service needs of a built image."""

    @property
    def name(self) -> str:
        """The image's name."""
        ...

    @property
    def python(self) -> Path:
        """The environment's Python executable."""
        ...


Build = Callable[[list[str], list[str], str], Awaitable[BuiltImage]]  # images.build(...)


async def build_trained_model_image(build: Build, manifest: Manifest, registry: str) -> BuiltImage:
    """Build (or reuse) the trained-model image of ``manifest`` with the generic builder."""
    packages = packages_for(manifest)
    name = image_name(registry, manifest.customer, manifest.run_id)
    return await build(packages.requirements, packages.extra_packages, name)

"""The FL actors' images of one repository commit: a learner's and an aggregator's.

What the original's builder did in stages 2-3, as log lines with its texts: the images of
the commit exist (``Latest FLOps images already exists for the provided repo.``), or the
build starts, each image is reported built, and the durations follow with the original's
keys (``full_builder_process``, ``build_preparation``, ``actor_images_build``). A missing
contract file raises ``ContractError`` (the original's text) before anything is built.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from core.progress import Notice, Progress, no_progress
from images.build import BuildRequest, BuildResult, build_image, python_version
from images.names import ActorKind, actor_image_name
from images.spec import actor_requirements, python_warning, read_spec
from images.store import Image, ImageStore
from images.uvrun import UvOptions
from mlrepos.contract import check_contract
from mlrepos.sources import RepoSnapshot

REUSED = "Latest FLOps images already exists for the provided repo."
KINDS: tuple[ActorKind, ...] = ("learner", "aggregator")


@dataclass(frozen=True)
class ActorImages:
    """The learner's and the aggregator's image of a commit."""

    learner: Image
    aggregator: Image
    reused: bool
    durations: dict[str, float]


def durations_text(durations: dict[str, float]) -> str:
    """The durations line, keyed as the original's builder reported them."""
    return "Builder durations: " + ", ".join(f"{k} {v:.2f} s" for k, v in durations.items())


async def build_actor_images(
    snapshot: RepoSnapshot,
    store: ImageStore,
    *,
    registry: str,
    tracking: bool = False,
    python: str = sys.executable,
    options: UvOptions = UvOptions(),  # noqa: B008 - frozen, safe to share
    progress: Progress = no_progress,
) -> ActorImages:
    """Reuse or build the images of ``snapshot``'s commit, telling ``progress`` as it goes.

    With ``tracking`` (setting ``mlflow_tracking``) the aggregator's image has MLflow
    (``images.spec.actor_requirements``) and a name of its own; the learner's never has.
    """
    names = {
        k: actor_image_name(
            registry, snapshot.user, snapshot.repo, k, snapshot.commit, tracking=tracking
        )
        for k in KINDS
    }
    found = {k: store.lookup(n) for k, n in names.items()}
    if found["learner"] is not None and found["aggregator"] is not None:
        await progress(Notice(REUSED, data={"images": names}))
        return ActorImages(found["learner"], found["aggregator"], True, {})
    started = time.monotonic()
    spec = read_spec(check_contract(snapshot.path))
    warning = python_warning(spec, await python_version(python))
    if warning:
        await progress(Notice(warning, level="warning", data={"pin": spec.python_pin}))
    labels = {"repo_url": snapshot.url, "source": snapshot.source, "commit": snapshot.commit}
    for note in spec.notes:
        await progress(Notice(f"{spec.source}: {note}"))
    requests = {}
    for kind in KINDS:
        packages, notes = actor_requirements(spec, kind, tracking=tracking)
        for note in notes:
            await progress(Notice(f"{kind} image: {note}"))
        requests[kind] = BuildRequest(
            names[kind], packages, python, {**labels, "kind": kind}, title=f"{kind} image"
        )
    prepared = time.monotonic()
    results: dict[str, BuildResult] = {}
    for kind in KINDS:
        await progress(Notice(f"Start building {names[kind]} image (This can take a while)"))
        results[kind] = await build_image(requests[kind], store, options=options, progress=progress)
        await progress(Notice(f"Successfully finished building new '{names[kind]}' image"))
    done = time.monotonic()
    durations = {
        "full_builder_process": round(done - started, 3),
        "build_preparation": round(prepared - started, 3),
        "actor_images_build": round(done - prepared, 3),
    }
    await progress(Notice(durations_text(durations), data={"durations": durations}))
    return ActorImages(results["learner"].image, results["aggregator"].image, False, durations)

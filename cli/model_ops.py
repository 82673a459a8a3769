"""What ``model`` and ``predict`` do (``cli.model_commands``)."""

from __future__ import annotations

import sys
from pathlib import Path

from cli.ops import Out, _query
from cli.settings import CliSettings
from core.errors import ConfigError
from protocol import topics
from protocol.messages import ProjectView
from services.trmodel.artifact import Artifact, open_artifact
from services.trmodel.errors import ArtifactError
from services.trmodel.predict import predict as send
from services.trmodel.predict import read_inputs
from services.trmodel.view import ModelView, export


async def show_model(settings: CliSettings, project_id: str, export_to: Path | None) -> int:
    """``flops model ID [--export DIR]``: the artifact's view; with ``--export``, a copy.

    The manager answers the view for the project's owner only; the copy is made from the
    stack's data dir, so ``--export`` works where this CLI can read it (the stack's host,
    the account that runs it) and says so elsewhere.
    """
    out = Out(settings)
    view = await _query(settings, topics.Op.SHOW_MODEL, ModelView, project_id=project_id)
    width = max(len(k) for k, _ in view.summary())
    for key, value in view.summary():
        out.line(f"{key:<{width}}  {value}")
    for f in view.files:
        out.line(f"  {f.path}  {f.size} bytes")
    doc = view.model_dump(mode="json")
    if export_to is not None:
        copied = export(_local_artifact(view), export_to)
        out.line(f"Exported to {copied}")
        doc["exported_to"] = str(copied)
    out.doc(doc)
    return 0


def _local_artifact(view: ModelView) -> Artifact:
    """The artifact the manager showed, read from here; a clear error where it cannot be."""
    try:
        artifact = open_artifact(Path(view.path))
    except ArtifactError as exc:
        raise ConfigError(
            f"--export copies the model from the stack's data dir ({view.path}), which this "
            f"CLI cannot read here ({exc}); run it on the stack's host as the account that "
            "runs the stack"
        ) from None
    if artifact.manifest.run_id != view.manifest.run_id:
        raise ConfigError(
            f"{view.path} here holds run {artifact.manifest.run_id}, not the stack's run "
            f"{view.manifest.run_id}: this CLI does not see the stack's data dir"
        )
    return artifact


async def predict(settings: CliSettings, project_id: str, source: str) -> int:
    """``flops predict ID [--input FILE|-]``: the predictions of the project's service."""
    out = Out(settings)
    payload = read_inputs(source, sys.stdin.buffer if source == "-" else None)
    project = await _query(settings, topics.Op.SHOW_PROJECT, ProjectView, project_id=project_id)
    if not project.inference_url:
        raise ConfigError(
            f"project {project_id} has no running inference service (state {project.state.value}"
            "; its SLA's post_training_steps need deploy_trained_model_image)"
        )
    predictions = await send(project.inference_url, payload, timeout=settings.timeout)
    for prediction in predictions:
        out.line(str(prediction))
    out.doc({"project_id": project_id, "url": project.inference_url, "predictions": predictions})
    return 0

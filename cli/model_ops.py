"""What ``model`` and ``predict`` do (``cli.model_commands``)."""

from __future__ import annotations

import sys
from pathlib import Path

from cli.ops import Out, _query
from cli.settings import CliSettings
from core.errors import ConfigError
from protocol import topics
from protocol.messages import ProjectView
from services.trmodel.artifact import models_dir
from services.trmodel.predict import predict as send
from services.trmodel.predict import read_inputs
from services.trmodel.view import export, show


def show_model(settings: CliSettings, project_id: str, export_to: Path | None) -> int:
    """``flops model ID [--export DIR]``: the artifact's view; with ``--export``, a copy."""
    out = Out(settings)
    view = show(models_dir(settings.data_dir), project_id)
    width = max(len(k) for k, _ in view.summary())
    for key, value in view.summary():
        out.line(f"{key:<{width}}  {value}")
    for f in view.files:
        out.line(f"  {f.path}  {f.size} bytes")
    doc = view.model_dump(mode="json")
    if export_to is not None:
        from services.trmodel.artifact import open_artifact  # noqa: PLC0415

        copied = export(open_artifact(Path(view.path)), export_to)
        out.line(f"Exported to {copied}")
        doc["exported_to"] = str(copied)
    out.doc(doc)
    return 0


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

"""The commands of a project's trained model: ``model`` (show, export) and ``predict``.

``model`` asks the manager for the artifact's view (the owner's projects only) and copies
it out of the stack's data dir with ``--export`` where this CLI can read it; ``predict`` asks
the manager for the project's ``inference_url`` and sends it the inputs.
``cli.model_ops`` does the work.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import PROJECT_ID, Common, common, talk


@click.command()
@PROJECT_ID
@click.option(
    "--export",
    "export_to",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Copy the artifact (checked against its manifest) into DIR, new or empty.",
)
@common
def model(project_id: str, export_to: Path | None, common: Common) -> None:
    """Show a project's trained model: manifest, files, metrics (docs/trained-model.md)."""
    from cli import model_ops  # noqa: PLC0415 - keep --help fast

    talk(common, lambda s: model_ops.show_model(s, project_id, export_to))


@click.command()
@PROJECT_ID
@click.option(
    "--input",
    "source",
    default="-",
    show_default=True,
    metavar="FILE|-",
    help="JSON rows, a .npy/.npz array or a .csv file; '-' reads standard input.",
)
@common
def predict(project_id: str, source: str, common: Common) -> None:
    """Send inputs to a project's inference service and print its predictions."""
    from cli import model_ops  # noqa: PLC0415 - keep --help fast

    talk(common, lambda s: model_ops.predict(s, project_id, source))


COMMANDS = (model, predict)

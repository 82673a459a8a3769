"""The commands of the node's data and images: ``mock_data``, ``data``, ``images``.

They work on the files in the data dir (setting ``data_dir``, the stack's); only
``images prune`` talks to the manager. ``cli.data_ops`` does the work.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import OUTPUT, YES, Common, common, confirmed, talk


@click.command(name="mock_data")
@click.option(
    "--mock-sla-file-name",
    "name",
    required=True,
    metavar="NAME|PATH",
    help="A bundled mock SLA (mnist_simple.json: 1 partition, mnist_multi.json: 3) or a path.",
)
@OUTPUT
def mock_data(name: str, output: str | None) -> None:
    """Prepare mock data on this node from a mock SLA. Aliases: m, mock-data.

    Dataset 'mnist' is scikit-learn's bundled digits resampled to 28x28 (not MNIST).
    """
    from cli import data_ops  # noqa: PLC0415 - keep --help fast

    talk(Common(output=output), lambda settings: data_ops.mock_data(settings, name))


@click.group(invoke_without_command=True)
@OUTPUT
@click.pass_context
def data(ctx: click.Context, output: str | None) -> None:
    """List the data on this node: tags, partitions, rows."""
    if ctx.invoked_subcommand is None:
        from cli import data_ops  # noqa: PLC0415 - keep --help fast

        talk(Common(output=output), data_ops.list_data)


@data.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--tag", required=True, help="The data tag to store the rows under.")
@click.option("--partitions", default=1, show_default=True, type=int, help="How many partitions.")
@OUTPUT
def import_(file: Path, tag: str, partitions: int, output: str | None) -> None:
    """Import a .npz or .csv file under a tag (docs/data-and-images.md has the format)."""
    from cli import data_ops  # noqa: PLC0415 - keep --help fast

    talk(Common(output=output), lambda s: data_ops.import_data(s, file, tag, partitions))


@click.group(invoke_without_command=True)
@OUTPUT
@click.pass_context
def images(ctx: click.Context, output: str | None) -> None:
    """List the environment images on this node: name, digest, size, age, projects."""
    if ctx.invoked_subcommand is None:
        from cli import data_ops  # noqa: PLC0415 - keep --help fast

        talk(Common(output=output), data_ops.list_images)


@images.command()
@YES
@common
def prune(yes: bool, common: Common) -> None:
    """Remove the images no project needs (asks the manager which projects still do)."""
    from cli import data_ops  # noqa: PLC0415 - keep --help fast

    if confirmed("Remove every image no project needs?", yes):
        talk(common, data_ops.prune_images)


COMMANDS = (mock_data, data, images)

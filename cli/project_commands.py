"""The commands that talk to the manager and the observers: projects, logs, tables.

Each parses, builds the typed settings (``cli.common``) and calls one function of
``cli.ops``; ``cli.ops`` is imported inside the command, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from cli.common import OUTPUT, PROJECT_ID, YES, Common, common, confirmed, talk


@click.command()
@click.option(
    "--project-sla-file-name",
    "sla",
    required=True,
    metavar="NAME|PATH",
    help="An SLA name (with or without .json) from your SLA folder or the bundled "
    "ones, or a path to an SLA file.",
)
@click.option("--show", is_flag=True, help="Print the SLA and send nothing.")
@click.option(
    "--follow/--no-follow",
    default=True,
    help="Follow the project's log until it rests (default) or return at once.",
)
@common
def project(sla: str, show: bool, follow: bool, common: Common) -> None:
    """Start a FLOps project from an SLA. Alias: p."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    talk(common, lambda settings: ops.start_project(settings, sla, show=show, follow=follow))


@click.command()
@common
def projects(common: Common) -> None:
    """List your projects with their state. Aliases: ls, list."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    talk(common, ops.list_projects)


@click.command()
@PROJECT_ID
@common
def status(project_id: str, common: Common) -> None:
    """Show one project: state, applications, services. Aliases: show, s."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    talk(common, lambda settings: ops.show_project(settings, project_id))


@click.command()
@common
def apps(common: Common) -> None:
    """Show your applications (the original's `oak a s`). Alias: a."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    talk(common, ops.list_apps)


@click.command()
@common
def services(common: Common) -> None:
    """Show your services with instance status (the original's `oak s s`)."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    talk(common, ops.list_services)


@click.command()
@PROJECT_ID
@YES
@common
def stop(project_id: str, yes: bool, common: Common) -> None:
    """Stop a project: undeploy its services; its log stays readable."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    if not confirmed(f"Stop project {project_id}?", yes):
        sys.exit(1)
    talk(common, lambda settings: ops.stop_project(settings, project_id))


@click.command()
@PROJECT_ID
@YES
@common
def delete(project_id: str, yes: bool, common: Common) -> None:
    """Delete a project and everything it created, its observer and log included."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    if not confirmed(f"Delete project {project_id} and its log?", yes):
        sys.exit(1)
    talk(common, lambda settings: ops.delete_project(settings, project_id))


@click.command()
@PROJECT_ID
@click.option("--from-seq", type=click.IntRange(min=1), default=1, help="First entry to print.")
@click.option(
    "--last",
    "-n",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Print only the last N entries.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries as they arrive.")
@click.option(
    "--until-rest",
    is_flag=True,
    help="With --follow: stop when the project rests; exit 0 if it runs on or completed, "
    "1 if it failed, 3 if it was stopped.",
)
@common
def log(
    project_id: str, from_seq: int, last: int | None, follow: bool, until_rest: bool, common: Common
) -> None:
    """Print a project's observer log, from any sequence number or its last N entries."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    talk(
        common,
        lambda settings: ops.show_log(
            settings, project_id, from_seq=from_seq, last=last, follow=follow, until_rest=until_rest
        ),
    )


@click.command()
@OUTPUT
def slas(output: str | None) -> None:
    """List the SLAs you can name with --project-sla-file-name."""
    from cli import ops  # noqa: PLC0415 - keep --help fast

    talk(Common(output=output), ops.list_slas)


COMMANDS = (project, projects, status, apps, services, stop, delete, log, slas)

"""The ``flops`` and ``oak`` command trees; the commands live in one module per family.

``cli.project_commands`` talk to the manager and observers, ``cli.data_commands`` handle
the node's data and images, ``cli.model_commands`` a project's trained model,
``cli.stack_commands`` run processes (``up``, ``down``, ``service run``),
``cli.user_commands`` manage the secure mode.
Exit codes and error text are ``cli.common``'s.
"""

from __future__ import annotations

from typing import ClassVar

import click

from cli import data_commands, model_commands, project_commands, stack_commands, user_commands
from cli.project_commands import apps, services


class AliasGroup(click.Group):
    """A group whose commands also answer to short aliases (``p`` for ``project``)."""

    aliases: ClassVar[dict[str, str]] = {
        "p": "project",
        "ls": "projects",
        "list": "projects",
        "show": "status",
        "s": "status",
        "a": "apps",
        "logs": "log",
        "m": "mock_data",
        "mock-data": "mock_data",
    }

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Resolve aliases."""
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))


@click.group(cls=AliasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flops-mqtt")
def flops() -> None:
    """FLOps: federated-learning operations over MQTT.

    Start the local stack with `flops up`, then start a project with
    `flops project --project-sla-file-name mnist_sklearn_small.json`
    (the same as `oak addon flops p ...`).
    """


COMMANDS = (
    *project_commands.COMMANDS,
    *data_commands.COMMANDS,
    *model_commands.COMMANDS,
    *stack_commands.COMMANDS,
    *user_commands.COMMANDS,
)
for command in COMMANDS:
    flops.add_command(command)


# ------------------------------------------------------------------ the oak-cli compatible tree


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def oak() -> None:
    """oak-cli compatible entry: `oak addon flops ...`, `oak a s`, `oak s s`."""


@oak.group()
def addon() -> None:
    """Addons; FLOps is `oak addon flops`."""


addon.add_command(flops, name="flops")


@oak.group(name="a")
def oak_apps() -> None:
    """Applications (`oak a s` shows them)."""


@oak.group(name="s")
def oak_services() -> None:
    """Services (`oak s s` shows them)."""


oak_apps.add_command(apps, name="s")
oak_apps.add_command(apps, name="show")
oak_services.add_command(services, name="s")
oak_services.add_command(services, name="show")


def flops_entry() -> None:
    """Console entry point of `flops` (usage lines name it as it was called)."""
    from cli.prog import prog  # noqa: PLC0415

    flops(prog_name=prog())


def oak_entry() -> None:
    """Console entry point of `oak`."""
    from cli.prog import oak_prog  # noqa: PLC0415

    oak(prog_name=oak_prog())

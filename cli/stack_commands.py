"""``flops up``, ``flops down`` and ``flops service run``: the processes FLOps runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli.common import OUTPUT, finish

if TYPE_CHECKING:
    from stack.settings import StackSettings


def stack_settings(**flags: object) -> StackSettings:
    """The stack's settings: defaults < file ``[stack]`` < environment < ``flags``."""
    from core.settings import load_settings  # noqa: PLC0415 - keep --help fast
    from stack.settings import StackSettings  # noqa: PLC0415

    return load_settings(StackSettings, flags, section="stack")


@click.command()
@click.option("--detach", "-d", is_flag=True, help="Run in the background; stop with `flops down`.")
@click.option(
    "--broker",
    "broker_kind",
    type=click.Choice(["auto", "mosquitto", "amqtt", "external"]),
    default=None,
    help="Embedded broker to start (auto: mosquitto if installed, else "
    "amqtt) or `external` to use --broker-host/--broker-port.",
)
@click.option(
    "--secure",
    is_flag=True,
    default=None,
    help="Passwords, a per-user ACL and TLS on the embedded mosquitto "
    "(manage users with `flops user`).",
)
@click.option("--broker-host", default=None, help="External broker host.")
@click.option(
    "--broker-port",
    type=int,
    default=None,
    help="Port of the external broker, or of the embedded one (default: a free port).",
)
@OUTPUT
def up(
    detach: bool,
    secure: bool | None,
    broker_kind: str | None,
    broker_host: str | None,
    broker_port: int | None,
    output: str | None,
) -> None:
    """Start the embedded FLOps stack: broker, manager, local runtime.

    In the foreground it runs until Ctrl-C or SIGTERM, then drains and exits.
    """
    from cli import stackctl  # noqa: PLC0415 - keep --help fast

    def run() -> int:
        settings = stack_settings(
            broker=broker_kind, broker_host=broker_host, broker_port=broker_port, secure=secure
        )
        if detach:
            args = _up_args(broker_kind, broker_host, broker_port) + (
                ["--secure"] if secure else []
            )
            return stackctl.up_detached(settings, args, json_out=output == "json")
        return stackctl.up_foreground(settings)

    finish(run, json_out=output == "json")


def _up_args(kind: str | None, host: str | None, port: int | None) -> list[str]:
    args = []
    for flag, value in (("--broker", kind), ("--broker-host", host), ("--broker-port", port)):
        if value is not None:
            args += [flag, str(value)]
    return args


@click.command()
@OUTPUT
def down(output: str | None) -> None:
    """Stop the FLOps stack started with `flops up --detach`."""
    from cli import stackctl  # noqa: PLC0415 - keep --help fast

    json_out = output == "json"
    finish(lambda: stackctl.down(stack_settings().data_dir, json_out), json_out)


@click.group()
def service() -> None:
    """A FLOps service (an observer, a builder …) in a process or container of its own."""


@service.command(name="run")
def service_run() -> None:
    """Run the service named by the FLOPS_SERVICE_* variables until it ends or SIGTERM.

    Runtimes start it (the process runtime, Oakestra containers); exit code 0 when it ended
    or was stopped, 1 when it failed, 2 when a variable is missing or malformed.
    """
    from cli import servicectl  # noqa: PLC0415 - keep --help fast
    from services.settings import load_service_settings  # noqa: PLC0415

    finish(lambda: servicectl.run_foreground(load_service_settings()), False)


COMMANDS = (up, down, service)

"""``flops user`` and ``flops secure``: the secure mode's users and files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from cli.common import OUTPUT, YES, confirmed, finish
from cli.stack_commands import stack_settings


@click.group()
def user() -> None:
    """Users of the secure mode (`flops up --secure`): add, passwd, list, remove.

    Passwords are read from a prompt or with --password-stdin, stored only as hashes in the
    broker's password file, and never printed; a running broker re-reads them at once.
    """


PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)


@user.command(name="add")
@click.argument("name")
@PASSWORD_STDIN
def user_add(name: str, password_stdin: bool) -> None:
    """Add a user who may start and follow their own projects."""
    _set_password(name, password_stdin, new=True)


@user.command(name="passwd")
@click.argument("name")
@PASSWORD_STDIN
def user_passwd(name: str, password_stdin: bool) -> None:
    """Change a user's password."""
    _set_password(name, password_stdin, new=False)


def _set_password(name: str, password_stdin: bool, *, new: bool) -> NoReturn:
    from cli import users  # noqa: PLC0415 - keep --help fast

    finish(
        lambda: users.set_password(
            stack_settings().data_dir, name, users.read_password(password_stdin), new=new
        ),
        False,
    )


@user.command(name="list")
@OUTPUT
def user_list(output: str | None) -> None:
    """List the user names."""
    from cli import users  # noqa: PLC0415 - keep --help fast

    json_out = output == "json"
    finish(lambda: users.list_users(stack_settings().data_dir, json_out), json_out)


@user.command(name="remove")
@click.argument("name")
@YES
def user_remove(name: str, yes: bool) -> None:
    """Remove a user."""
    from cli import users  # noqa: PLC0415 - keep --help fast

    if not confirmed(f"Remove user {name}?", yes):
        sys.exit(1)
    finish(lambda: users.remove_user(stack_settings().data_dir, name), False)


@click.group()
def secure() -> None:
    """The secure mode's files for a deployment (compose.yaml runs `flops secure init`)."""


@secure.command(name="init")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder (a volume) for tls/, broker/passwd and broker/acl.",
)
@click.option(
    "--broker-host",
    "hosts",
    multiple=True,
    help="A name clients use for the broker, in its certificate (repeatable); "
    "127.0.0.1 and localhost are always in it.",
)
@click.option(
    "--broker-owner",
    metavar="UID:GID",
    default=None,
    help="Owner of the broker's key, password file and ACL (1883:1883 for the "
    "eclipse-mosquitto image); needs root.",
)
@click.option(
    "--service-owner",
    metavar="UID:GID",
    default=None,
    help="Owner of the services' key; its group may read it (the broker's health check).",
)
@click.option(
    "--cli-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write config.toml and ca.crt here for the CLI on the host.",
)
@click.option("--cli-host", default="127.0.0.1", help="Broker host in the CLI's config file.")
@click.option(
    "--cli-port",
    type=click.IntRange(1, 65535),
    default=8883,
    help="Broker port (people's TLS listener) in the CLI's config file.",
)
def secure_init(
    folder: Path,
    hosts: tuple[str, ...],
    broker_owner: str | None,
    service_owner: str | None,
    cli_dir: Path | None,
    cli_host: str,
    cli_port: int,
) -> None:
    """Create the CA, certificates, ACL and empty password file, unless they exist.

    A second run changes nothing and never makes a new CA. Add users with
    `FLOPS_DATA_DIR=<dir> flops user add NAME`.
    """
    from cli.secure import run_init  # noqa: PLC0415 - keep --help fast
    from stack.secure_init import Owner, Plan  # noqa: PLC0415

    def run() -> int:
        plan = Plan(
            folder,
            hosts,
            Owner.parse(broker_owner) if broker_owner else None,
            Owner.parse(service_owner) if service_owner else None,
            cli_dir,
            cli_host,
            cli_port,
        )
        return run_init(plan)

    finish(run, False)


COMMANDS = (user, secure)

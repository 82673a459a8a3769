"""The ``flops`` and ``oak`` commands: parse, build the settings, call ``cli.ops``.

Exit codes: 0 done; 1 failed (no broker, no answer, refused, project failed);
2 bad input (SLA, usage, settings); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import click

from core.errors import ConfigError, FlopsError, RemoteError, SLAError

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default=None,
    help="Tables for people (default) or one JSON document.",
)
USER = click.option("--user", default=None, help="Act as this user [env FLOPS_USER].")
BROKER = click.option(
    "--broker",
    default=None,
    metavar="HOST:PORT",
    help="MQTT broker to use [env FLOPS_BROKER_HOST/PORT; default: the "
    "stack started by `flops up`, else 127.0.0.1:1883].",
)
TIMEOUT = click.option(
    "--timeout", type=float, default=None, help="Seconds to wait for an answer [default 10]."
)


def _project_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if len(value) != 24 or any(c not in "0123456789abcdef" for c in value):
        raise click.BadParameter(
            f"{value!r} is not a project id: 24 hex digits, as `flops projects` shows them"
        )
    return value


PROJECT_ID = click.argument("project_id", callback=_project_id)


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every talking command has."""
    return OUTPUT(USER(BROKER(TIMEOUT(fn))))


def _settings(**flags: Any) -> Any:
    from cli.settings import CliSettings  # noqa: PLC0415 - keep --help fast
    from core.settings import config_path, load_settings  # noqa: PLC0415

    broker = flags.pop("broker", None)
    if broker:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--broker {broker!r}: expected HOST:PORT")
        flags.update(broker_host=host, broker_port=int(port))
    settings = load_settings(CliSettings, flags, section="cli")
    _warn_if_exposed(config_path(os.environ))
    return settings


def _warn_if_exposed(path: Path) -> None:
    """Warn when a config file that holds a password can be read by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not mode & 0o077:
        return
    from core.settings import read_config_file  # noqa: PLC0415

    # Read as the settings just read it (they would have failed on a broken file).
    data = read_config_file(path, required=False)
    tables = [data, *(v for v in data.values() if isinstance(v, dict))]
    if any("password" in table for table in tables):
        click.echo(
            f"Warning: {path} holds a password and is readable by others "
            f"(mode {mode & 0o777:o}); run: chmod 600 {path}",
            err=True,
        )


def _finish(run: Callable[[], Coroutine[Any, Any, int] | int], json_out: bool) -> NoReturn:
    try:
        result = run()
        if isinstance(result, Coroutine):
            import asyncio  # noqa: PLC0415 - 80 ms: only commands that talk pay for it
            import logging  # noqa: PLC0415

            # paho logs socket errors itself; we say what went wrong in one line instead.
            logging.getLogger("mqtt").setLevel(logging.CRITICAL)
            code = asyncio.run(result)
        else:
            code = result
    except KeyboardInterrupt:
        click.echo("\nInterrupted; anything already sent keeps going.", err=True)
        sys.exit(130)
    except BaseExceptionGroup as group:
        code = _fail(_first_flops_error(group), json_out)
    except FlopsError as exc:
        code = _fail(exc, json_out)
    _exit(int(code))


def _exit(code: int) -> NoReturn:
    """Exit at once once the work is done and written out.

    The connection is closed and the stores too; what is left is the interpreter's teardown
    of every imported module, about 60 ms of a short command's wall time (measured).
    """
    if "logging" in sys.modules:
        import logging  # noqa: PLC0415

        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # a reader gone; closed
            stream.flush()
    os._exit(code)


def _first_flops_error(group: BaseExceptionGroup[Any]) -> BaseException:
    for exc in group.exceptions:
        found = _first_flops_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, FlopsError):
            return found
    raise group


def _fail(exc: BaseException, json_out: bool) -> int:
    bad_input = isinstance(exc, SLAError | ConfigError) or (
        isinstance(exc, RemoteError) and exc.code in ("invalid_sla", "bad_schema")
    )
    code = getattr(exc, "code", type(exc).__name__)
    details = getattr(exc, "details", None) or getattr(exc, "problems", None) or []
    if json_out:
        click.echo(
            json.dumps(
                {
                    "success": False,
                    "error": {"code": code, "message": str(exc), "details": details},
                },
                indent=2,
            )
        )
    else:
        click.echo(f"Error: {exc}", err=True)
        for line in details if isinstance(exc, RemoteError) else []:
            click.echo(f"  {line}", err=True)
    return 2 if bad_input else 1


def _call(op: str, flags: dict[str, Any], *args: Any, **kwargs: Any) -> NoReturn:
    """Build the settings and run ``cli.ops.<op>``, translating errors to exit codes."""
    json_out = flags.get("output") == "json"

    def run() -> Any:
        # paho imports dnspython when it is installed (pymongo brings it), for SRV lookups
        # the CLI never makes: 60 ms of a command's start-up. `flops up` keeps it.
        sys.modules.setdefault("dns.resolver", None)  # type: ignore[arg-type]
        from cli import ops  # noqa: PLC0415

        settings = _settings(**flags)
        return getattr(ops, op)(settings, *args, **kwargs)

    _finish(run, json_out)


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


@flops.command()
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
def project(sla: str, show: bool, follow: bool, **flags: Any) -> None:
    """Start a FLOps project from an SLA. Alias: p."""
    _call("start_project", flags, sla, show=show, follow=follow)


@flops.command()
@common
def projects(**flags: Any) -> None:
    """List your projects with their state. Aliases: ls, list."""
    _call("list_projects", flags)


@flops.command()
@PROJECT_ID
@common
def status(project_id: str, **flags: Any) -> None:
    """Show one project: state, applications, services. Aliases: show, s."""
    _call("show_project", flags, project_id)


@flops.command()
@common
def apps(**flags: Any) -> None:
    """Show your applications (the original's `oak a s`). Alias: a."""
    _call("list_apps", flags)


@flops.command()
@common
def services(**flags: Any) -> None:
    """Show your services with instance status (the original's `oak s s`)."""
    _call("list_services", flags)


def _confirmed(question: str, yes: bool) -> bool:
    """Ask before a destructive step; without a terminal, only ``--yes`` confirms."""
    if yes:
        return True
    if not sys.stdin.isatty():
        click.echo("Error: not confirmed; pass --yes to confirm without a terminal.", err=True)
        sys.exit(2)
    return click.confirm(question, default=False)


YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


@flops.command()
@PROJECT_ID
@YES
@common
def stop(project_id: str, yes: bool, **flags: Any) -> None:
    """Stop a project: undeploy its services; its log stays readable."""
    if not _confirmed(f"Stop project {project_id}?", yes):
        sys.exit(1)
    _call("stop_project", flags, project_id)


@flops.command()
@PROJECT_ID
@YES
@common
def delete(project_id: str, yes: bool, **flags: Any) -> None:
    """Delete a project and everything it created, its observer and log included."""
    if not _confirmed(f"Delete project {project_id} and its log?", yes):
        sys.exit(1)
    _call("delete_project", flags, project_id)


@flops.command()
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
    help="With --follow: stop when the project rests; exit 0 if it runs on, 1 if it "
    "failed, 3 if it was stopped.",
)
@common
def log(
    project_id: str, from_seq: int, last: int | None, follow: bool, until_rest: bool, **flags: Any
) -> None:
    """Print a project's observer log, from any sequence number or its last N entries."""
    _call(
        "show_log",
        flags,
        project_id,
        from_seq=from_seq,
        last=last,
        follow=follow,
        until_rest=until_rest,
    )


@flops.command()
@OUTPUT
def slas(**flags: Any) -> None:
    """List the SLAs you can name with --project-sla-file-name."""
    _call("list_slas", flags)


@flops.command()
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
    from cli import stackctl  # noqa: PLC0415
    from core.settings import load_settings  # noqa: PLC0415
    from stack.settings import StackSettings  # noqa: PLC0415

    def run() -> int:
        settings = load_settings(
            StackSettings,
            {
                "broker": broker_kind,
                "broker_host": broker_host,
                "broker_port": broker_port,
                "secure": secure,
            },
            section="stack",
        )
        if detach:
            args = _up_args(broker_kind, broker_host, broker_port) + (
                ["--secure"] if secure else []
            )
            return stackctl.up_detached(settings, args, json_out=output == "json")
        return stackctl.up_foreground(settings)

    _finish(run, json_out=output == "json")


def _up_args(kind: str | None, host: str | None, port: int | None) -> list[str]:
    args = []
    for flag, value in (("--broker", kind), ("--broker-host", host), ("--broker-port", port)):
        if value is not None:
            args += [flag, str(value)]
    return args


@flops.command()
@OUTPUT
def down(output: str | None) -> None:
    """Stop the FLOps stack started with `flops up --detach`."""
    from cli import stackctl  # noqa: PLC0415
    from core.settings import load_settings  # noqa: PLC0415
    from stack.settings import StackSettings  # noqa: PLC0415

    json_out = output == "json"
    _finish(
        lambda: stackctl.down(load_settings(StackSettings, section="stack").data_dir, json_out),
        json_out,
    )


@flops.group()
def service() -> None:
    """A FLOps service (observer or builder) in a process or container of its own."""


@service.command(name="run")
def service_run() -> None:
    """Run the service named by the FLOPS_SERVICE_* variables until it ends or SIGTERM.

    Runtimes start it (the process runtime, Oakestra containers); exit code 0 when it ended
    or was stopped, 1 when it failed, 2 when a variable is missing or malformed.
    """
    from cli import servicectl  # noqa: PLC0415
    from services.settings import load_service_settings  # noqa: PLC0415

    _finish(lambda: servicectl.run_foreground(load_service_settings()), False)


@flops.group()
def user() -> None:
    """Users of the secure mode (`flops up --secure`): add, passwd, list, remove.

    Passwords are read from a prompt or with --password-stdin, stored only as hashes in the
    broker's password file, and never printed; a running broker re-reads them at once.
    """


PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)


def _stack_data_dir() -> Path:
    from core.settings import load_settings  # noqa: PLC0415
    from stack.settings import StackSettings  # noqa: PLC0415

    return load_settings(StackSettings, section="stack").data_dir


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
    from cli import users  # noqa: PLC0415

    _finish(
        lambda: users.set_password(
            _stack_data_dir(), name, users.read_password(password_stdin), new=new
        ),
        False,
    )


@user.command(name="list")
@OUTPUT
def user_list(output: str | None) -> None:
    """List the user names."""
    from cli import users  # noqa: PLC0415

    _finish(lambda: users.list_users(_stack_data_dir(), output == "json"), output == "json")


@user.command(name="remove")
@click.argument("name")
@YES
def user_remove(name: str, yes: bool) -> None:
    """Remove a user."""
    from cli import users  # noqa: PLC0415

    if not _confirmed(f"Remove user {name}?", yes):
        sys.exit(1)
    _finish(lambda: users.remove_user(_stack_data_dir(), name), False)


@flops.group()
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
    from cli.secure import run_init  # noqa: PLC0415
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

    _finish(run, False)


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
    """Console entry point of `flops`."""
    flops(prog_name="flops")


def oak_entry() -> None:
    """Console entry point of `oak`."""
    oak(prog_name="oak")

"""What every command shares: the common options, the typed settings, errors to exit codes.

Exit codes: 0 done; 1 failed (no broker, no answer, refused, project failed);
2 bad input (SLA, usage, settings); 130 interrupted. Only this module turns errors into
exit codes and text.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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
YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
Result = Coroutine[Any, Any, int] | int

if TYPE_CHECKING:
    from cli.settings import CliSettings


def _project_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if len(value) != 24 or any(c not in "0123456789abcdef" for c in value):
        raise click.BadParameter(
            f"{value!r} is not a project id: 24 hex digits, as `flops projects` shows them"
        )
    return value


PROJECT_ID = click.argument("project_id", callback=_project_id)


@dataclass(frozen=True)
class Common:
    """The options every talking command has."""

    output: str | None = None
    user: str | None = None
    broker: str | None = None
    timeout: float | None = None

    @property
    def json(self) -> bool:
        """Whether the answer is one JSON document."""
        return self.output == "json"

    def settings(self) -> CliSettings:
        """The command's settings: defaults < file < environment < these flags."""
        from cli.settings import CliSettings  # noqa: PLC0415 - keep --help fast
        from core.settings import config_path, load_settings  # noqa: PLC0415

        flags: dict[str, object] = {"output": self.output, "user": self.user}
        flags["timeout"] = self.timeout
        if self.broker:
            host, _, port = self.broker.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"--broker {self.broker!r}: expected HOST:PORT")
            flags.update(broker_host=host, broker_port=int(port))
        settings = load_settings(CliSettings, flags, section="cli")
        _warn_if_exposed(config_path(os.environ))
        return settings


def common(fn: Callable[..., None]) -> Callable[..., None]:
    """Add the common options to a command; it gets them as ``common: Common``."""

    @functools.wraps(fn)
    def with_common(
        *args: object,
        output: str | None,
        user: str | None,
        broker: str | None,
        timeout: float | None,
        **kwargs: object,
    ) -> None:
        fn(*args, common=Common(output, user, broker, timeout), **kwargs)

    return OUTPUT(USER(BROKER(TIMEOUT(with_common))))


def talk(opts: Common, command: Callable[[CliSettings], Result]) -> NoReturn:
    """Build the settings and run ``command`` with them, translating errors to exit codes."""

    def run() -> Result:
        # paho imports dnspython when it is installed (pymongo brings it), for SRV lookups
        # the CLI never makes: 60 ms of a command's start-up. `flops up` keeps it.
        sys.modules.setdefault("dns.resolver", None)  # type: ignore[arg-type]
        return command(opts.settings())

    finish(run, opts.json)


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


def finish(run: Callable[[], Result], json_out: bool) -> NoReturn:
    """Run a command (a coroutine runs on a new event loop) and exit with its code."""
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
        error = {"code": code, "message": str(exc), "details": details}
        click.echo(json.dumps({"success": False, "error": error}, indent=2))
    else:
        click.echo(f"Error: {exc}", err=True)
        for line in details if isinstance(exc, RemoteError) else []:
            click.echo(f"  {line}", err=True)
    return 2 if bad_input else 1


def confirmed(question: str, yes: bool) -> bool:
    """Ask before a destructive step; without a terminal, only ``--yes`` confirms."""
    if yes:
        return True
    if not sys.stdin.isatty():
        click.echo("Error: not confirmed; pass --yes to confirm without a terminal.", err=True)
        sys.exit(2)
    return click.confirm(question, default=False)

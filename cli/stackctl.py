"""``flops up`` and ``flops down``: run the embedded stack in the foreground or detached."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from cli.prog import prog
from core import logs
from core.paths import check_dir, make_private, shorten_home
from stack.discovery import StackCard, pid_alive, read_card
from stack.settings import StackSettings


def up_foreground(settings: StackSettings) -> int:
    """Run the stack until Ctrl-C or SIGTERM, then drain and exit 0."""
    from stack.app import run_stack  # noqa: PLC0415 - keep the CLI's start-up light

    check_dir(settings.data_dir)
    card = read_card(settings.data_dir)
    if card is not None:
        click.echo(
            f"A FLOps stack is already running (pid {card.pid}, broker "
            f"mqtt://{card.broker_host}:{card.broker_port}); stop it with `{prog()} down`.",
            err=True,
        )
        return 1
    os.umask(0o077)  # databases, logs and the broker's state: private to this user
    make_private(settings.data_dir)
    log_file = settings.data_dir / "stack.log"
    rotating = logs.writes_to(log_file)  # detached: stderr is stack.log, which rotates
    logs.configure(
        settings.log_level,
        logs.RotatingStderr(log_file, settings.log_max_bytes, settings.log_backups)
        if rotating
        else None,
    )

    def ready(card: StackCard) -> None:
        click.echo(
            f"FLOps stack ready: broker mqtt://{card.broker_host}:{card.broker_port} "
            f"({card.broker_kind}), state in {shorten_home(settings.data_dir)}. "
            "Ctrl-C stops it.",
            err=True,
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_stack(settings, stop, ready)

    asyncio.run(main())
    click.echo("FLOps stack stopped.", err=True)
    return 0


def _report(text: str, data: dict[str, object], json_out: bool) -> None:
    click.echo(json.dumps(data, indent=2) if json_out else text)


def _card_doc(card: StackCard, state: str) -> dict[str, object]:
    return {"state": state, **asdict(card)}


def up_detached(
    settings: StackSettings, argv: list[str], json_out: bool = False, wait: float = 30.0
) -> int:
    """Start ``flops up`` in the background, wait until it is ready, print where it is."""
    check_dir(settings.data_dir)
    card = read_card(settings.data_dir)
    if card is not None:
        _report(
            f"FLOps stack already running (pid {card.pid}, broker "
            f"mqtt://{card.broker_host}:{card.broker_port}).",
            _card_doc(card, "already running"),
            json_out,
        )
        return 0
    make_private(settings.data_dir)
    log_path = settings.data_dir / "stack.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
            env=os.environ.copy(),
        )
    click.echo(
        f"Starting the FLOps stack (pid {proc.pid}, log {shorten_home(log_path)}) ...", err=True
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        card = read_card(settings.data_dir)
        if card is not None and card.pid == proc.pid:
            _report(
                f"FLOps stack running: broker mqtt://{card.broker_host}:{card.broker_port}"
                f" ({card.broker_kind}), pid {card.pid}. Stop it with `{prog()} down`.",
                _card_doc(card, "running"),
                json_out,
            )
            return 0
        if proc.poll() is not None:
            click.echo(f"The stack exited (code {proc.returncode}):\n{_tail(log_path)}", err=True)
            return 1
        time.sleep(0.1)
    click.echo(f"The stack did not become ready within {wait:g}s; see {log_path}", err=True)
    return 1


def down(data_dir: Path, json_out: bool = False, wait: float = 30.0) -> int:
    """Stop the detached stack with SIGTERM (it drains) and wait for it to exit."""
    card = read_card(data_dir)
    if card is None:
        _report("No FLOps stack is running.", {"state": "not running"}, json_out)
        return 0
    os.kill(card.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not pid_alive(card.pid):
            _report(f"FLOps stack stopped (pid {card.pid}).", _card_doc(card, "stopped"), json_out)
            return 0
        time.sleep(0.1)
    click.echo(f"The stack (pid {card.pid}) did not stop within {wait:g}s.", err=True)
    return 1


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

"""``flops service run``: one service in the foreground until it ends or SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import click

from core import logs
from core.paths import check_dir
from services.settings import ServiceSettings


def run_foreground(settings: ServiceSettings) -> int:
    """Run the service; SIGTERM and SIGINT drain it. Print the ready line on stdout."""
    from services.run import READY, run_service  # noqa: PLC0415 - keep --help fast

    check_dir(settings.data_dir)
    os.umask(0o077)  # its log database is private to the stack's user
    log_file = settings.data_dir / "service.log"  # the process runtime's child: it rotates
    logs.configure(
        settings.log_level,
        logs.RotatingStderr(log_file, settings.log_max_bytes, settings.log_backups)
        if logs.writes_to(log_file)
        else None,
        f"%(asctime)s %(levelname)s {settings.service.name} %(name)s: %(message)s",
    )

    def ready() -> None:
        click.echo(READY)  # the process runtime waits for this line
        sys.stdout.flush()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_service(settings, stop, ready)

    return asyncio.run(main())

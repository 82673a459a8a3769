"""``flops service run``: one service in the foreground until it ends or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from core.paths import check_dir
from services.settings import ServiceSettings


def run_foreground(settings: ServiceSettings) -> int:
    """Run the service; SIGTERM and SIGINT drain it. Print the ready line on stdout."""
    from services.run import READY, run_service  # noqa: PLC0415 - keep --help fast

    check_dir(settings.data_dir)
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {settings.service.name} %(name)s: %(message)s",
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

"""Turns an orchestrator's instance statuses into the stack's status changes.

Oakestra tells nobody when an instance ends; the stack asks it, every few seconds, for the
status of each service that should be running, and hands every change to the same sink the
local runtime calls. A service that ends (COMPLETED, FAILED) leaves the store's list of
services to run, so it is asked about no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from core.errors import FlopsError
from protocol.states import InstanceStatus
from runtimes.base import StatusSink
from services.spec import ServiceSpec

log = logging.getLogger(__name__)


class StatusSource(Protocol):
    """A runtime that can be asked for an instance's status (``OakestraRuntime``)."""

    async def status(self, spec: ServiceSpec) -> InstanceStatus:
        """The current status of the service's instance."""


class StatusPoller:
    """Polls the status of the services to run; reports changes to ``on_status``."""

    def __init__(
        self,
        source: StatusSource,
        services: Callable[[], Awaitable[list[ServiceSpec]]],
        on_status: StatusSink,
        interval: float,
    ) -> None:
        self._source = source
        self._services = services
        self._on_status = on_status
        self._interval = interval
        self._known: dict[str, InstanceStatus] = {}

    async def poll_once(self) -> int:
        """Ask once about every service to run; report and count the changed statuses."""
        changed = 0
        specs = await self._services()
        for spec in specs:
            try:
                status = await self._source.status(spec)
            except FlopsError as exc:
                log.warning("status of %s unknown this round: %s", spec.name, exc)
                continue
            if self._known.get(spec.id) is status:
                continue
            self._known[spec.id] = status
            await self._on_status(spec, status)
            changed += 1
        running = {spec.id for spec in specs}
        self._known = {sid: s for sid, s in self._known.items() if sid in running}
        return changed

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval`` until ``stop`` is set; a failed round is tried again."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                await self.poll_once()
            except FlopsError:
                log.exception("status poll failed; trying again")

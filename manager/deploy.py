"""The deployment interface: where the manager's services run.

The embedded default (``stack.runtime.LocalRuntime``) runs them as tasks on this machine;
an orchestrator backend (Oakestra) implements the same two calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from broker.messages import InstanceStatus
from manager.store import ServiceSpec

# Called by a runtime whenever an instance's status changes after deploy() returned.
StatusSink = Callable[[ServiceSpec, InstanceStatus], Awaitable[None]]


class Runtime(Protocol):
    """Runs services; ``DeployError`` on failure."""

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        """Start the service (idempotent: a running service stays as it is); return its status."""

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Stop the service if it runs; with ``purge`` also remove what it keeps (a log)."""

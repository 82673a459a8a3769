"""The deployment interface: where the manager's services run.

The embedded default (``runtimes.local.LocalRuntime``) runs them as tasks on this machine;
an orchestrator backend (Oakestra) implements the same two calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from protocol.states import InstanceStatus
from services.spec import ServiceSpec

# Called by a runtime whenever an instance's status changes after deploy() returned.
StatusSink = Callable[[ServiceSpec, InstanceStatus], Awaitable[None]]


class Runtime(Protocol):
    """Runs services; ``DeployError`` on failure."""

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        """Start the service (idempotent: a running service stays as it is); return its status."""

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Stop the service if it runs; with ``purge`` also remove what it keeps (a log)."""


class Inventory(Protocol):
    """A runtime that can list what it runs in this process (the local runtime)."""

    def running(self) -> list[ServiceSpec]:
        """The services it runs now."""


@runtime_checkable
class Clusters(Protocol):
    """A runtime made of clusters it can name (Oakestra); hierarchical training uses them.

    The local and process runtimes are not: there the ``training_clusters`` setting applies.
    """

    async def active_clusters(self) -> list[str]:
        """The names of the clusters that take services now; ``DeployError`` if it cannot tell."""

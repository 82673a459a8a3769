"""The deployment interface: where the manager's services run.

The embedded default (``runtimes.local.LocalRuntime``) runs them as tasks on this machine;
an orchestrator backend (Oakestra) implements the same two calls.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Protocol

from manager.store.interface import ServiceSpec
from protocol.states import InstanceStatus

# How an orchestrator starts a service: the image's ``flops`` command, reading the
# environment that ``service_environment`` builds (stack/service_process.py runs it).
SERVICE_COMMAND = ("flops", "service", "run")
SERVICE_ENV_PREFIX = "FLOPS_SERVICE_"

# Called by a runtime whenever an instance's status changes after deploy() returned.
StatusSink = Callable[[ServiceSpec, InstanceStatus], Awaitable[None]]


class Runtime(Protocol):
    """Runs services; ``DeployError`` on failure."""

    async def deploy(self, spec: ServiceSpec) -> InstanceStatus:
        """Start the service (idempotent: a running service stays as it is); return its status."""

    async def undeploy(self, spec: ServiceSpec, *, purge: bool = False) -> None:
        """Stop the service if it runs; with ``purge`` also remove what it keeps (a log)."""


def service_environment(spec: ServiceSpec) -> dict[str, str]:
    """The ``FLOPS_SERVICE_*`` variables that tell ``flops service run`` which service it is.

    One definition for every runtime that starts services as processes or containers.
    """
    values = {"ID": spec.id, "NAME": spec.name, "KIND": spec.kind, "USER": spec.user}
    values |= {"PROJECT_ID": spec.project_id, "CONFIG": json.dumps(spec.config, sort_keys=True)}
    return {SERVICE_ENV_PREFIX + key: value for key, value in values.items()}


class Inventory(Protocol):
    """A runtime that can list what it runs in this process (the local runtime)."""

    def running(self) -> list[ServiceSpec]:
        """The services it runs now."""

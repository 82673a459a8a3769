"""One service to run, and how a runtime hands it to ``flops service run``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# How an orchestrator starts a service: the image's ``flops`` command, reading the
# environment that ``service_environment`` builds (services/run.py runs it).
SERVICE_COMMAND = ("flops", "service", "run")
SERVICE_ENV_PREFIX = "FLOPS_SERVICE_"
# The config key that pins a service to one cluster of an orchestrator (Oakestra): hierarchical
# training's cluster aggregators and their learners. In the config, so it is stored with the
# service and a restored service keeps it.
PLACEMENT = "placement"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What a runtime needs to run one service."""

    id: str
    name: str
    kind: str  # a key of services.kinds.KINDS
    user: str
    project_id: str
    app_id: str
    config: dict[str, Any] = field(default_factory=dict)


def service_environment(spec: ServiceSpec) -> dict[str, str]:
    """The ``FLOPS_SERVICE_*`` variables that tell ``flops service run`` which service it is.

    One definition for every runtime that starts services as processes or containers.
    """
    values = {"ID": spec.id, "NAME": spec.name, "KIND": spec.kind, "USER": spec.user}
    values |= {"PROJECT_ID": spec.project_id, "CONFIG": json.dumps(spec.config, sort_keys=True)}
    return {SERVICE_ENV_PREFIX + key: value for key, value in values.items()}


def placement(spec: ServiceSpec) -> str | None:
    """The cluster the service must run in, if its config names one."""
    value = spec.config.get(PLACEMENT)
    return value if isinstance(value, str) and value else None

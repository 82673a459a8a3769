"""The settings object of a service process (``flops service run``).

A service process runs one service outside the stack; the ``FLOPS_SERVICE_*`` variables
(``services.spec.service_environment``) say which.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core import paths
from core.errors import ConfigError
from core.settings import load_settings
from services.kinds import KINDS
from services.spec import SERVICE_ENV_PREFIX

TOPIC_LEVEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # protocol.topics.check_level


class ServiceIdentity(BaseModel):
    """Which service a ``flops service run`` process is: the ``FLOPS_SERVICE_*`` variables.

    ``runtimes.base.service_environment`` writes them; every runtime passes them unchanged.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = Field(pattern=TOPIC_LEVEL)  # its MQTT client id and heartbeat source
    kind: str  # a key of services.kinds.KINDS
    user: str = Field(pattern=TOPIC_LEVEL)
    project_id: str = Field(pattern=r"^[0-9a-f]{24}$")  # protocol.messages.Id
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"no service kind {value!r}; known: {', '.join(sorted(KINDS))}")
        return value


class ServiceSettings(BaseModel):
    """Settings of one service process: the service, the broker, where it keeps data."""

    model_config = ConfigDict(extra="forbid")

    service: ServiceIdentity
    data_dir: Path = Field(default_factory=paths.data_dir)  # an observer's log database
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=1883, ge=1, le=65535)
    ca_file: Path | None = None  # TLS: the CA that signed the broker's certificate
    ca_pem: str = ""  # or its certificate itself (FLOPS_CA_PEM: what Oakestra's SLA carries)
    cert_file: Path | None = None  # and a client certificate, if the broker wants one
    key_file: Path | None = None
    # A training actor in the secure mode: its project's account on the broker's password
    # listener at this port (user name = project id; broker.accounts). Not the services' TLS
    # identity, which its events and heartbeats still use.
    train_port: int | None = Field(default=None, ge=1, le=65535)
    train_password_file: Path | None = None
    heartbeat_interval: float = Field(default=15.0, gt=0)  # an observer's heartbeats
    exit_with_parent: bool = False  # the process runtime's children end with their stack
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The process runtime's service.log: renamed to service.log.1 at this size.
    log_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    log_backups: int = Field(default=1, ge=0, le=100)


def load_service_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> ServiceSettings:
    """The service from ``FLOPS_SERVICE_*``, the rest as every setting (``[service]``).

    A missing or malformed service variable fails with a message that names it.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in ServiceIdentity.model_fields:
        variable = SERVICE_ENV_PREFIX + field.upper()
        value = env.get(variable, "")
        if not value and field != "config":
            raise ConfigError(f"{variable} is not set: the orchestrator must name the service")
        raw[field] = value
    try:
        raw["config"] = json.loads(raw["config"] or "{}")
    except ValueError as exc:
        raise ConfigError(f"{SERVICE_ENV_PREFIX}CONFIG is not valid JSON: {exc}") from None
    try:
        identity = ServiceIdentity.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{SERVICE_ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid service variable ({problems})") from None
    return load_settings(ServiceSettings, {**(flags or {}), "service": identity}, env, "service")

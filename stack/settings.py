"""The settings objects of a stack process (``flops up``) and a service process.

A service process (``flops service run``) runs one observer or builder outside the stack.
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
from manager.deploy import SERVICE_ENV_PREFIX


class StackSettings(BaseModel):
    """Settings of the stack: file section ``[stack]``, env ``FLOPS_<NAME>``, or flags."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=paths.data_dir)
    broker: Literal["auto", "mosquitto", "amqtt", "external"] = "auto"
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=0, ge=0, le=65535)  # 0: a free port for the embedded broker
    # Several stacks on one broker and one database: requests are shared among them (an MQTT
    # shared subscription); each needs its own `identifier` and data dir.
    cluster: bool = False
    secure: bool = False  # passwords, per-user ACL and TLS on the embedded broker
    ca_file: Path | None = None  # TLS to an external broker: the CA that signed it
    cert_file: Path | None = None  # and the services' client certificate, if it wants one
    key_file: Path | None = None
    store: Literal["sqlite", "mongodb"] = "sqlite"
    mongo_url: str = "mongodb://127.0.0.1:27017/flops"  # with store = "mongodb"
    registry: str = "localhost:5073"
    git_timeout: float = Field(default=30.0, gt=0)
    service_deadline: float = Field(default=60.0, gt=0)  # silent services fail their project
    # cluster: how often a stack stops its services that another replica stopped or deleted
    reconcile_interval: float = Field(default=5.0, gt=0)
    identifier: str = Field("flops-stack", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The detached stack's stack.log: renamed to stack.log.1 … at this size, backups kept.
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_backups: int = Field(default=3, ge=0, le=100)
    # Where observers and builders run: tasks in this process (local), one child process
    # each (process, `flops service run`), or containers on Oakestra ([oakestra] section).
    runtime: Literal["local", "process", "oakestra"] = "local"
    service_start_timeout: float = Field(default=30.0, gt=0)  # process: until a child is ready
    status_poll_interval: float = Field(default=5.0, gt=0)  # oakestra: seconds between polls
    # Per user, 0 for no limit: projects neither FAILED nor STOPPED, and starts per minute.
    max_live_projects: int = Field(default=50, ge=0)
    max_starts_per_minute: int = Field(default=20, ge=0)
    # Folders whose git repositories an SLA may name as file:// (env: separated by ':').
    # Unset: any folder where the broker authenticates nobody, no folder where it does.
    local_repo_roots: list[Path] | None = None

    @field_validator("local_repo_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        return [p for p in value.split(os.pathsep) if p] if isinstance(value, str) else value

    def repo_roots(self) -> tuple[Path, ...] | None:
        """Where ``file://`` repositories may be; ``None``: anywhere.

        Anywhere by default only where users are not told apart anyway (no secure mode and
        no TLS to an external broker): otherwise a user could probe the stack's files.
        """
        if self.local_repo_roots is not None:
            return tuple(self.local_repo_roots)
        return () if self.secure or self.ca_file is not None else None


TOPIC_LEVEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # broker.topics.check_level


class ServiceIdentity(BaseModel):
    """Which service a ``flops service run`` process is: the ``FLOPS_SERVICE_*`` variables.

    ``manager.deploy.service_environment`` writes them; every runtime passes them unchanged.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = Field(pattern=TOPIC_LEVEL)  # its MQTT client id and heartbeat source
    kind: Literal["observer", "builder"]
    user: str = Field(pattern=TOPIC_LEVEL)
    project_id: str = Field(pattern=r"^[0-9a-f]{24}$")  # broker.messages.Id
    config: dict[str, Any] = Field(default_factory=dict)


class ServiceSettings(BaseModel):
    """Settings of one service process: the service, the broker, where it keeps data."""

    model_config = ConfigDict(extra="forbid")

    service: ServiceIdentity
    data_dir: Path = Field(default_factory=paths.data_dir)  # an observer's log database
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=1883, ge=1, le=65535)
    ca_file: Path | None = None  # TLS: the CA that signed the broker's certificate
    cert_file: Path | None = None  # and a client certificate, if the broker wants one
    key_file: Path | None = None
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

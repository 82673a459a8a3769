"""The one settings object of a CLI invocation."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core import paths


class CliSettings(BaseModel):
    """CLI settings: file section ``[cli]`` (or top level), env ``FLOPS_<NAME>``, or flags.

    Without ``broker_host``/``broker_port`` the CLI uses the local stack started by
    ``flops up`` (its card in the data dir), else 127.0.0.1:1883.
    """

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=paths.data_dir)
    broker_host: str | None = None
    broker_port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    timeout: float = Field(default=10.0, gt=0, le=3600)
    sla_dir: Path = Field(default_factory=paths.user_sla_dir)
    output: Literal["table", "json"] = "table"
    # The secure mode: the password of `user` (config file with mode 600, or FLOPS_PASSWORD;
    # never a flag), the CA that signed the broker's certificate, an optional client cert.
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

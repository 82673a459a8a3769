"""The settings object of a stack process (``flops up``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import paths
from services.training.settings import TrainingSettings


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
    # ml_repo_url -> a local git repository, a plain folder, or "bundled:<name>" (mlrepos)
    repo_sources: dict[str, str] = Field(default_factory=dict)
    build_progress_interval: float = Field(default=2.0, gt=0)  # uv silence before a line
    build_timeout: float = Field(default=900.0, gt=0)  # one uv step at most
    # The stages projects go through (manager.pipeline.PIPELINES): "all", or "build" (they
    # rest in IMAGES_READY once their images are built: a node that only builds).
    stages: Literal["all", "build"] = "all"
    # Hierarchical training: cluster aggregators per project on this node, each with the
    # SLA's min_available_clients learners.
    training_clusters: int = Field(default=2, ge=1, le=16)
    # The training actors' timeouts and limits (services.training.settings.TrainingSettings):
    # the [stack.training] table, FLOPS_TRAINING_<NAME>; handed to every actor in its config.
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    # The trained models' inference services (docs/trained-model.md): loopback unless another
    # interface is named on purpose; port 0: each service keeps the free port it got first.
    inference_host: str = "127.0.0.1"
    inference_port: int = Field(default=0, ge=0, le=65535)
    # Log rounds and the model to MLflow as the original did (docs/training.md): the
    # aggregator's image gets mlflow-skinny; the store is sqlite under data_dir/mlflow
    # unless mlflow_tracking_uri names another.
    mlflow_tracking: bool = False
    mlflow_tracking_uri: str = ""
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
    # Per user, 0 for no limit: projects not COMPLETED, FAILED or STOPPED; starts per minute.
    max_live_projects: int = Field(default=50, ge=0)
    max_starts_per_minute: int = Field(default=20, ge=0)
    # Folders whose git repositories an SLA may name as file:// (env: separated by ':').
    # Unset: any folder where the broker authenticates nobody, no folder where it does.
    local_repo_roots: list[Path] | None = None
    # Benchmarks only, not for users (bench/, docs/performance.md): with the local runtime,
    # services other than observers are recorded as RUNNING and never run (runtimes/record.py),
    # so the suite's project starts measure the control plane alone.
    bench_record_services: bool = False

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

"""The settings of federated training and the plan of rounds an SLA asks for."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flops_env import frames
from slas.model import TrainingConfiguration

MiB = 1 << 20


class TrainingSettings(BaseModel):
    """Timeouts and limits of the training actors (one object per process).

    ``chunk_bytes`` must stay under the broker's ``max_packet_size`` (1 MiB in ours).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    heartbeat_interval: float = Field(default=1.0, gt=0)
    learner_timeout: float = Field(default=10.0, gt=0)  # silence before a learner is gone
    join_timeout: float = Field(default=120.0, gt=0)  # learners to join / enough to come back
    round_timeout: float = Field(default=1800.0, gt=0)  # one fit or evaluate task
    aggregator_timeout: float = Field(default=300.0, gt=0)  # learners wait this for a silent one
    worker_start_timeout: float = Field(default=120.0, gt=0)
    worker_call_timeout: float = Field(default=1800.0, gt=0)
    max_model_bytes: int = Field(default=256 * MiB, ge=1024)
    chunk_bytes: int = Field(default=256 * 1024, ge=1024, le=1024 * 1024 - 1024)

    @property
    def frame_limit(self) -> int:
        """The largest frame accepted: the parameters plus their headers."""
        return self.max_model_bytes + frames.SLACK

    @model_validator(mode="after")
    def _silence_after_beats(self) -> Self:
        if self.learner_timeout <= 2 * self.heartbeat_interval:
            raise ValueError("learner_timeout must be more than twice heartbeat_interval")
        return self


class RoundPlan(BaseModel):
    """How many rounds (and cycles) run, and how many learners each needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["classic", "hierarchical"] = "classic"
    rounds: int = Field(default=3, ge=1)
    cycles: int = Field(default=1, ge=1)
    min_available: int = Field(default=1, ge=1)
    min_fit: int = Field(default=1, ge=1)
    min_evaluate: int = Field(default=1, ge=1)

    @classmethod
    def from_sla(cls, config: TrainingConfiguration) -> RoundPlan:
        """The plan of an SLA's ``training_configuration``."""
        return cls(
            mode=config.mode,
            rounds=config.training_rounds,
            cycles=config.training_cycles,
            min_available=config.min_available_clients,
            min_fit=config.min_fit_clients,
            min_evaluate=config.min_evaluate_clients,
        )

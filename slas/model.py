"""The project SLA as one strict pydantic model.

Unknown keys, wrong types and out-of-range values are refused with the field named.
Producers (the CLI) and consumers (the manager) validate with this same model.
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GITHUB_URL = re.compile(
    r"^https://github\.com/([A-Za-z0-9-]{1,39})/([A-Za-z0-9._-]{1,100}?)(?:\.git)?/?$"
)
FILE_URL = re.compile(r"^file:///(?:[^/\0]+/)*([^/\0]+)/([^/\0]+?)(?:\.git)?/?$")
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Flavor = Literal["sklearn", "pytorch", "tensorflow", "keras"]
Platform = Literal["linux/amd64", "linux/arm64"]
AMD64_ONLY: tuple[Platform, ...] = ("linux/amd64",)
PostStep = Literal["build_image_for_trained_model", "deploy_trained_model_image"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrainingConfiguration(_Strict):
    """How the federated training runs: mode, rounds, cycles and client counts."""

    mode: Literal["classic", "hierarchical"] = "classic"
    data_tags: list[str] = Field(default_factory=list, max_length=64)
    training_cycles: int = Field(default=1, ge=1, le=10_000)
    training_rounds: int = Field(default=3, ge=1, le=10_000)
    min_available_clients: int = Field(default=1, ge=1, le=100_000)
    min_fit_clients: int = Field(default=1, ge=1, le=100_000)
    min_evaluate_clients: int = Field(default=1, ge=1, le=100_000)

    @field_validator("data_tags")
    @classmethod
    def _tags_not_blank(cls, tags: list[str]) -> list[str]:
        if any(not t.strip() or len(t) > 128 for t in tags):
            raise ValueError("each data tag must be 1-128 non-blank characters")
        return tags

    @model_validator(mode="after")
    def _clients_and_cycles(self) -> Self:
        available = self.min_available_clients
        for name in ("min_fit_clients", "min_evaluate_clients"):
            if getattr(self, name) > available:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must not exceed "
                    f"min_available_clients ({available})"
                )
        if self.mode == "classic" and self.training_cycles != 1:
            raise ValueError("training_cycles is only valid with mode 'hierarchical'")
        return self


class ResourceConstraints(_Strict):
    """Resources each project service asks for (memory and storage in MB)."""

    memory: int = Field(default=100, ge=1, le=1_048_576)
    vcpus: int = Field(default=1, ge=1, le=1024)
    storage: int = Field(default=0, ge=0, le=10_485_760)


class ProjectSLA(_Strict):
    """A FLOps project SLA, as written in the predefined ``*.json`` files."""

    customerID: str = Field(min_length=1, max_length=64)  # noqa: N815 - the SLA's own key
    verbose: bool = False
    ml_repo_url: str = Field(max_length=2048)
    ml_model_flavor: Flavor
    use_devel_base_images: bool = False
    supported_platforms: list[Platform] = Field(
        default_factory=lambda: list(AMD64_ONLY), min_length=1, max_length=2
    )
    training_configuration: TrainingConfiguration = TrainingConfiguration()
    post_training_steps: list[PostStep] = Field(default_factory=list, max_length=2)
    resource_constraints: ResourceConstraints = ResourceConstraints()

    @field_validator("customerID")
    @classmethod
    def _user_is_topic_safe(cls, value: str) -> str:
        if not USER_ID.match(value):
            raise ValueError(
                "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("ml_repo_url")
    @classmethod
    def _github_style(cls, value: str) -> str:
        if not (GITHUB_URL.match(value) or FILE_URL.match(value)):
            raise ValueError(
                "must be a GitHub repository URL https://github.com/<user>/<repo> "
                "(or a local git repository file:///<path>/<user>/<repo>)"
            )
        return value

    @field_validator("supported_platforms", "post_training_steps")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("must not repeat an entry")
        return values

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if self.use_devel_base_images and self.supported_platforms != ["linux/amd64"]:
            raise ValueError(
                "use_devel_base_images is only valid with supported_platforms ['linux/amd64']"
            )
        steps = self.post_training_steps
        if "deploy_trained_model_image" in steps and "build_image_for_trained_model" not in steps:
            raise ValueError(
                "post_training_steps: deploy_trained_model_image needs "
                "build_image_for_trained_model"
            )
        return self

    def repo_owner_and_name(self) -> tuple[str, str]:
        """The ``(github user, repo)`` pair of ``ml_repo_url``."""
        match = GITHUB_URL.match(self.ml_repo_url) or FILE_URL.match(self.ml_repo_url)
        if match is None:  # unreachable: validated at construction
            raise ValueError(self.ml_repo_url)
        return match.group(1), match.group(2)

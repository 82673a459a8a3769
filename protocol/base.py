"""The base of every wire message and the field rules several messages share."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VERSION: Literal[1] = 1
Id = Field(pattern=r"^[0-9a-f]{24}$")
RequestId = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
ClientId = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Message(BaseModel):
    """Base of every wire message: strict keys, a version field."""

    # defer_build: a model builds its validator on first use; a CLI command uses a few of
    # the ~30, and building them all at import took ~40 ms of its start-up.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    v: Literal[1] = VERSION

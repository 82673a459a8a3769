"""The best-model rule of the original FLOps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Best(BaseModel):
    """The best round so far and its metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    round: int
    loss: float
    accuracy: float
    cycle: int | None = None


def is_better(candidate: Best, best: Best | None) -> bool:
    """The first round is best; a later one only with higher accuracy AND lower loss."""
    if best is None:
        return True
    return candidate.accuracy > best.accuracy and candidate.loss < best.loss

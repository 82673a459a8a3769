"""The aggregator's checkpoint: written atomically after each completed round.

One file, ``<dir>/checkpoint.flf``, a frame (``flops_env.frames``): the header holds the
completed round count, the best round's metrics and the history of round data; the arrays
are the global parameters followed by the best round's parameters. It is written to a
temporary file, flushed to disk and renamed over the old one, so a kill at any moment
leaves either the previous checkpoint or the new one.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from flops_env import frames
from services.training.best import Best
from services.training.errors import TrainingError
from services.training.fedavg import Arrays
from services.training.messages import RoundData

NAME = "checkpoint.flf"


class State(BaseModel):
    """Where the training stands (the checkpoint's header)."""

    model_config = ConfigDict(extra="forbid")
    completed: int = 0  # rounds (root: cycles) done and counted
    total: int
    best: Best | None = None
    history: list[RoundData] = []
    finished: bool = False
    parameters: int = 0  # how many arrays the global parameters are


class Checkpoint(BaseModel):
    """A state with the global and the best parameters."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    state: State
    global_parameters: Arrays
    best_parameters: Arrays


def _write(folder: Path, data: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (NAME + ".tmp")
    with tmp.open("wb") as out:
        out.writelines(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(folder / NAME)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(folder: Path, checkpoint: Checkpoint) -> None:
    """Write the checkpoint atomically (blocking: a few ms for the digits model)."""
    state = checkpoint.state.model_copy(update={"parameters": len(checkpoint.global_parameters)})
    pieces = frames.encode(
        state.model_dump(mode="json"),
        [*checkpoint.global_parameters, *checkpoint.best_parameters],
    )
    _write(folder, pieces)


def load(folder: Path, limit: int) -> Checkpoint | None:
    """The checkpoint in ``folder``, or ``None`` if there is none."""
    path = folder / NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        frame = frames.decode(data, 2 * limit + frames.SLACK)
        state = State.model_validate(frame.header)
    except (frames.FrameError, ValidationError) as exc:
        raise TrainingError(f"the checkpoint {path} is damaged: {exc}") from exc
    split = state.parameters
    return Checkpoint(
        state=state, global_parameters=frame.arrays[:split], best_parameters=frame.arrays[split:]
    )

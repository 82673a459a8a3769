"""The messages of federated training, defined once for every actor.

Presence messages are small JSON objects. Tasks and results are binary frames
(``flops_env.frames``): the message below is the frame's JSON header and the parameters
travel beside it as ``.npy`` arrays. All have ``"v": 1`` and refuse unknown fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.training.best import Best

Name = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Op = Literal["fit", "evaluate", "done"]


class TrainingMessage(BaseModel):
    """Base of the training messages: strict keys, a version field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1


class Presence(TrainingMessage):
    """A learner's or an aggregator's sign of life, arrival or departure.

    ``run`` identifies one start of the sender: a restarted aggregator has a new one, and
    learners answer its ``hello`` by joining again.
    """

    kind: Literal["hello", "join", "beat", "leave"]
    sender: str = Name
    run: str = Field(pattern=r"^[0-9a-f]{8,32}$")
    reason: str = Field(default="", max_length=2000)


class Task(TrainingMessage):
    """The aggregator asks ``learners`` to fit or evaluate the global parameters it sends.

    ``done`` ends the training: learners leave. ``cycle`` is the root's cycle in
    hierarchical mode (a cluster aggregator runs its rounds for it).
    """

    task_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    op: Op
    round: int = Field(ge=0)
    cycle: int | None = Field(default=None, ge=1)
    learners: list[str] = Field(max_length=100_000)


class UserError(TrainingMessage):
    """An exception of the user's code, as the worker described it."""

    type: str = Field(max_length=200)
    message: str = Field(max_length=4000)
    file: str | None = Field(default=None, max_length=1000)
    line: int | None = None


class Result(TrainingMessage):
    """A learner's answer to a task; a fit result carries the fitted parameters as arrays."""

    task_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    sender: str = Name
    ok: bool = True
    examples: int = Field(default=0, ge=0)
    loss: float | None = None
    accuracy: float | None = None
    seconds: float = Field(default=0.0, ge=0)
    error: str = Field(default="", max_length=4000)
    user_error: UserError | None = None


class RoundData(BaseModel):
    """The typed data of a round event (the re-housed ``Event.data``).

    ``level`` says whose round it is: the classic aggregator's, the root's (one per cycle:
    then ``round`` is the cycle) or a cluster aggregator's (``cycle`` set).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["round"] = "round"
    round: int = Field(ge=1)
    rounds: int = Field(ge=1)
    loss: float
    accuracy: float
    examples: int = Field(ge=0)
    learners: int = Field(ge=0)
    seconds: float = Field(ge=0)
    level: Literal["classic", "root", "cluster"] = "classic"
    group: str = "root"
    cycle: int | None = None
    cycles: int | None = None
    best: Best | None = None  # the aggregator's best round so far, this one included

    def text(self) -> str:
        """The line for the log: ``Round 2/3: loss 0.612, accuracy 0.851 (2 learners, 0.14 s)``."""
        metrics = f"loss {self.loss:.3f}, accuracy {self.accuracy:.3f}"
        match self.level:
            case "classic":
                who, what = f"Round {self.round}/{self.rounds}", "learners"
            case "root":
                who, what = f"Cycle {self.round}/{self.rounds}", "clusters"
            case "cluster":
                cycle = f", cycle {self.cycle}/{self.cycles}" if self.cycle else ""
                who, what = (
                    f"Cluster {self.group}{cycle}, round {self.round}/{self.rounds}",
                    ("learners"),
                )
        return f"{who}: {metrics} ({self.learners} {what}, {self.seconds:.2f} s)"


class BestData(BaseModel):
    """The typed data of the final event: the best round's metrics and the model's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["best"] = "best"
    round: int
    loss: float
    accuracy: float
    rounds: int
    model_dir: str  # the artifact's folder (services.trmodel.artifact)
    run_id: str = ""  # the artifact's run id


EventData = RoundData | BestData

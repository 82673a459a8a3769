"""The training topics of a project, built and parsed in this one module.

``flops/v1/users/<user>/projects/<project>/train/<group>/<channel>``, beside the project's
``events`` and ``heartbeat`` topics (``broker/topics.py``). ``group`` is one aggregator's
group of learners: ``root`` for the classic aggregator and the hierarchical root, the
cluster's name for a cluster aggregator. Channels:

| channel | publisher | subscriber | payload |
|---|---|---|---|
| ``tasks`` | aggregator | its learners | frame: ``Task`` + global parameters |
| ``results`` | learners | aggregator | frame: ``Result`` (+ fitted parameters) |
| ``learners`` | learners | aggregator | JSON ``Presence`` (join, beat, leave; leave is the will) |
| ``aggregator`` | aggregator | learners | JSON ``Presence`` (hello, beat, leave) |

In the secure mode a project's actors connect with the project id as user name
(``broker.accounts``), and ``broker.security.ACTOR_ACL`` confines them to
``project_filter(<any user>, <their project>)``: their own project's training topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.topics import ROOT, VERSION, TopicError, check_level


class Channel(StrEnum):
    """What a training topic carries."""

    TASKS = "tasks"
    RESULTS = "results"
    LEARNERS = "learners"
    AGGREGATOR = "aggregator"


@dataclass(frozen=True, slots=True)
class TrainTopic:
    """One training topic: user, project, group and channel."""

    user: str
    project: str
    group: str
    channel: Channel

    def __post_init__(self) -> None:
        check_level(self.user, "user")
        check_level(self.project, "project")
        check_level(self.group, "training group")

    def __str__(self) -> str:
        return (
            f"{ROOT}/{VERSION}/users/{self.user}/projects/{self.project}"
            f"/train/{self.group}/{self.channel.value}"
        )

    @classmethod
    def parse(cls, text: str) -> TrainTopic:
        """Parse a concrete training topic; raise ``TopicError`` for anything else."""
        match text.split("/"):
            case [r, v, "users", user, "projects", project, "train", group, channel] if (
                r == ROOT and v == VERSION
            ):
                try:
                    return cls(user, project, group, Channel(channel))
                except ValueError as exc:
                    raise TopicError(f"not a training topic: {text!r}: {exc}") from exc
        raise TopicError(f"not a training topic: {text!r}")


@dataclass(frozen=True, slots=True)
class Group:
    """The topics of one aggregation group of one project."""

    user: str
    project: str
    name: str = "root"

    def topic(self, channel: Channel) -> TrainTopic:
        """The topic of ``channel`` in this group."""
        return TrainTopic(self.user, self.project, self.name, channel)

    @property
    def tasks(self) -> str:
        """Aggregator -> learners."""
        return str(self.topic(Channel.TASKS))

    @property
    def results(self) -> str:
        """Learners -> aggregator."""
        return str(self.topic(Channel.RESULTS))

    @property
    def learners(self) -> str:
        """The learners' presence."""
        return str(self.topic(Channel.LEARNERS))

    @property
    def aggregator(self) -> str:
        """The aggregator's presence."""
        return str(self.topic(Channel.AGGREGATOR))


def project_filter(user: str, project: str) -> str:
    """Every training topic of one project (what its actors may use)."""
    return f"{ROOT}/{VERSION}/users/{check_level(user, 'user')}/projects/{project}/train/#"

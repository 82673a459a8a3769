"""Every FLOps topic, built and parsed in this one module.

All topics live under ``flops/v1/users/<user>/``: the user is a topic level so that a broker
ACL can confine each user to their own subtree. See docs/protocol.md for who publishes what.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from core.errors import FlopsError
from core.logs import shown

ROOT = "flops"
VERSION = "v1"
_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TopicError(FlopsError, ValueError):
    """A topic string or a topic level is not one of ours."""


class Kind(StrEnum):
    """What a topic carries."""

    REQUEST = "request"  # users/<u>/requests/<op>          client  -> manager
    REPLY = "reply"  # users/<u>/replies/<client>           manager/observer -> client
    EVENT = "event"  # users/<u>/projects/<p>/events        manager, services -> observer
    LOG = "log"  # users/<u>/projects/<p>/log               observer -> followers
    LOG_QUERY = "log_query"  # users/<u>/projects/<p>/log/query  followers -> observer
    HEARTBEAT = "heartbeat"  # users/<u>/projects/<p>/heartbeat  services -> manager


class Op(StrEnum):
    """Request operations the manager answers."""

    CREATE_PROJECT = "create_project"
    LIST_PROJECTS = "list_projects"
    SHOW_PROJECT = "show_project"
    LIST_APPS = "list_apps"
    LIST_SERVICES = "list_services"
    STOP_PROJECT = "stop_project"
    DELETE_PROJECT = "delete_project"
    SHOW_MODEL = "show_model"


OPS = frozenset(Op)


def check_level(value: str, what: str) -> str:
    """Refuse a topic level that could escape its place (``/``, ``+``, ``#``, empty)."""
    if not _LEVEL.match(value):
        raise TopicError(f"{what} {shown(value)} is not a valid topic level")
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed FLOps topic: its kind, the user, and the kind's one extra level."""

    kind: Kind
    user: str
    arg: str  # the op, the client id or the project id

    def __post_init__(self) -> None:
        check_level(self.user, "user")
        if self.kind is Kind.REQUEST:
            Op(self.arg)
        else:
            check_level(self.arg, self.kind.value + " argument")

    def __str__(self) -> str:
        base = f"{ROOT}/{VERSION}/users/{self.user}"
        match self.kind:
            case Kind.REQUEST:
                return f"{base}/requests/{self.arg}"
            case Kind.REPLY:
                return f"{base}/replies/{self.arg}"
            case Kind.EVENT:
                return f"{base}/projects/{self.arg}/events"
            case Kind.LOG:
                return f"{base}/projects/{self.arg}/log"
            case Kind.LOG_QUERY:
                return f"{base}/projects/{self.arg}/log/query"
            case Kind.HEARTBEAT:
                return f"{base}/projects/{self.arg}/heartbeat"

    @property
    def project_id(self) -> str:
        """The project id of a project-scoped topic."""
        if self.kind not in (Kind.EVENT, Kind.LOG, Kind.LOG_QUERY, Kind.HEARTBEAT):
            raise TopicError(f"{self} is not a project topic")
        return self.arg

    @classmethod
    def parse(cls, text: str) -> Topic:
        """Parse a concrete topic string; raise ``TopicError`` for anything else."""
        parts = text.split("/")
        if len(parts) < 5 or parts[:3] != [ROOT, VERSION, "users"]:
            raise TopicError(f"not a FLOps {VERSION} topic: {shown(text)}")
        user, rest = parts[3], parts[4:]
        try:
            match rest:
                case ["requests", op] if op in OPS:
                    return cls(Kind.REQUEST, user, op)
                case ["replies", client]:
                    return cls(Kind.REPLY, user, client)
                case ["projects", project, "events"]:
                    return cls(Kind.EVENT, user, project)
                case ["projects", project, "log"]:
                    return cls(Kind.LOG, user, project)
                case ["projects", project, "log", "query"]:
                    return cls(Kind.LOG_QUERY, user, project)
                case ["projects", project, "heartbeat"]:
                    return cls(Kind.HEARTBEAT, user, project)
        except TopicError as exc:
            raise TopicError(f"not a FLOps topic: {shown(text)}: {exc}") from exc
        raise TopicError(f"not a FLOps topic: {shown(text)}")


def request(user: str, op: Op) -> Topic:
    """Topic on which ``user`` asks the manager for ``op``."""
    return Topic(Kind.REQUEST, user, op.value)


def reply(user: str, client_id: str) -> Topic:
    """Topic on which ``client_id`` of ``user`` receives its answers."""
    return Topic(Kind.REPLY, user, client_id)


def events(user: str, project_id: str) -> Topic:
    """Topic of a project's lifecycle events, consumed by its observer."""
    return Topic(Kind.EVENT, user, project_id)


def log(user: str, project_id: str) -> Topic:
    """Topic on which a project's observer publishes each stored log entry."""
    return Topic(Kind.LOG, user, project_id)


def log_query(user: str, project_id: str) -> Topic:
    """Topic on which followers ask a project's observer for history."""
    return Topic(Kind.LOG_QUERY, user, project_id)


def heartbeat(user: str, project_id: str) -> Topic:
    """Topic on which a project's services say they are alive."""
    return Topic(Kind.HEARTBEAT, user, project_id)


# Subscription filters of the services (all users; a broker ACL narrows per user).
ALL_REQUESTS = f"{ROOT}/{VERSION}/users/+/requests/+"
ALL_EVENTS = f"{ROOT}/{VERSION}/users/+/projects/+/events"
ALL_LOG_QUERIES = f"{ROOT}/{VERSION}/users/+/projects/+/log/query"
ALL_HEARTBEATS = f"{ROOT}/{VERSION}/users/+/projects/+/heartbeat"


@functools.lru_cache(maxsize=4096)  # every inbound message is matched against every route
def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT ``topic_filter`` (``+`` and ``#`` wildcards)."""
    fparts, tparts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(fparts):
        if part == "#":
            return True
        if i >= len(tparts) or (part not in ("+", tparts[i])):
            return False
    return len(fparts) == len(tparts)

"""The manager takes no request from a project's training actors' account (a project id)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from manager.deps import Deps
from manager.service import ManagerService
from mqtt.link import Inbound, Link
from protocol import codec
from tests.manager.test_handlers import deps, request

__all__ = ["deps"]  # the fixture: a real SQLite store and a recording runtime
pytestmark = pytest.mark.timeout(30)
PROJECT_ID = "0123456789abcdef01234567"


class Replies:
    """The link's side the manager answers through."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def route(self, *_: Any, **__: Any) -> None:
        """The manager's subscriptions: not needed here."""

    async def publish(self, topic: object, payload: bytes, **_: Any) -> None:
        self.sent.append(str(topic))


def _create(user: str) -> Inbound:
    topic = f"flops/v1/users/{user}/requests/create_project"
    return Inbound(topic, codec.encode(request(customerID=user)), 1, lambda: None)


async def test_a_request_under_a_project_id_as_user_is_dropped(deps: Deps) -> None:
    replies = Replies()
    manager = ManagerService(cast(Link, replies), deps)
    await manager.on_request(_create(PROJECT_ID))
    assert replies.sent == []
    assert await deps.store.projects(PROJECT_ID) == []
    await manager.on_request(_create("Admin"))  # a person's is answered
    assert replies.sent == ["flops/v1/users/Admin/replies/cli-1"]

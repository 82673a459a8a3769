"""The manager on the MQTT link: decode requests once, call the handlers, answer.

Malformed or invalid requests get a structured error answer when the sender can be
identified, and a log line; nothing is created for them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from broker import codec, topics
from broker.link import Inbound, Link
from broker.messages import (
    CreateProject,
    ErrorBody,
    Event,
    ListApps,
    ListProjects,
    ListServices,
    Reply,
    Request,
    ShowProject,
)
from core.errors import FlopsError
from manager import handlers
from manager.handlers import Deps, RefusedError

log = logging.getLogger(__name__)
Op = topics.Op
Handler = Callable[[str, Any, Deps], Awaitable[BaseModel]]

REQUESTS: dict[Op, tuple[type[Request], Handler]] = {
    Op.CREATE_PROJECT: (CreateProject, handlers.create_project),
    Op.LIST_PROJECTS: (ListProjects, handlers.list_projects),
    Op.SHOW_PROJECT: (ShowProject, handlers.show_project),
    Op.LIST_APPS: (ListApps, handlers.list_apps),
    Op.LIST_SERVICES: (ListServices, handlers.list_services),
}


class ManagerService:
    """Binds the manager's handlers to the link's request and event topics."""

    def __init__(self, link: Link, deps: Deps) -> None:
        self._link = link
        self._deps = deps
        link.route(topics.ALL_REQUESTS, self.on_request, concurrent=True)
        link.route(topics.ALL_EVENTS, self.on_event)

    async def resume(self) -> None:
        """Finish the starts that a previous run left unfinished."""
        for project_id in await self._deps.store.unfinished_projects():
            log.info("resuming the start of project %s", project_id)
            await handlers.advance(project_id, self._deps)

    async def on_request(self, inbound: Inbound) -> None:
        """Handle one request and answer it."""
        try:
            topic = topics.Topic.parse(inbound.topic)
        except topics.TopicError as exc:
            log.warning("dropped: %s", exc)
            return
        op = Op(topic.arg)
        model, handler = REQUESTS[op]
        try:
            request = codec.decode(model, inbound.payload)
        except codec.MessageError as exc:
            log.warning("bad %s request from %s: %s %s", op, topic.user, exc, exc.details)
            peek = codec.peek_reply_to(inbound.payload)
            if peek is not None:
                await self._answer(
                    topic.user,
                    peek[1],
                    peek[0],
                    error=ErrorBody(code=exc.code, message=str(exc), details=exc.details),
                )
            return
        try:
            result = await handler(topic.user, request, self._deps)
        except RefusedError as exc:
            log.info("%s %s of %s refused: %s", op, request.request_id, topic.user, exc)
            await self._answer(
                topic.user,
                request.reply_to,
                request.request_id,
                error=ErrorBody(code=exc.code, message=str(exc), details=exc.details),
            )
            return
        except FlopsError as exc:
            log.exception("%s %s of %s failed", op, request.request_id, topic.user)
            await self._answer(
                topic.user,
                request.reply_to,
                request.request_id,
                error=ErrorBody(code="internal", message=str(exc)),
            )
            return
        await self._answer(topic.user, request.reply_to, request.request_id, result=result)
        if op is Op.CREATE_PROJECT:
            project_id = getattr(result, "id", "")
            log.info(
                "project %s started for %s (request %s)", project_id, topic.user, request.request_id
            )
            await handlers.advance(project_id, self._deps)

    async def on_event(self, inbound: Inbound) -> None:
        """Apply project state changes that events report."""
        if b'"state"' not in inbound.payload:
            return  # most events change no state: skip decoding them twice
        try:
            topic = topics.Topic.parse(inbound.topic)
            event = codec.decode(Event, inbound.payload)
        except (topics.TopicError, codec.MessageError):
            return  # the observer logs these
        await handlers.apply_event(topic.user, topic.project_id, event, self._deps)

    async def _answer(
        self,
        user: str,
        reply_to: str,
        request_id: str,
        *,
        result: BaseModel | None = None,
        error: ErrorBody | None = None,
    ) -> None:
        try:
            topic = topics.reply(user, reply_to)
        except topics.TopicError:
            log.warning("cannot answer %s: bad reply_to %r", request_id, reply_to)
            return
        reply = Reply(
            request_id=request_id,
            ok=error is None,
            error=error,
            result=result.model_dump(mode="json") if result is not None else None,
        )
        await self._link.publish(topic, codec.encode(reply))

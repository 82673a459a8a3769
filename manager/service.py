"""The manager on the MQTT link: decode requests once, call the handlers, answer.

Malformed or invalid requests get a structured error answer when the sender can be
identified, and a log line; nothing is created for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from core.errors import FlopsError
from core.ids import is_object_id
from core.logs import Throttle, shown
from manager import events, handlers, lifecycle, trained
from manager.deps import Deps, RefusedError
from mqtt.link import Inbound, Link
from protocol import codec, topics
from protocol.events import Event, Heartbeat
from protocol.messages import (
    CreateProject,
    DeleteProject,
    ErrorBody,
    ListApps,
    ListProjects,
    ListServices,
    ProjectView,
    Reply,
    Request,
    ShowModel,
    ShowProject,
    StopProject,
)
from runtimes.base import Inventory

log = logging.getLogger(__name__)
Op = topics.Op
Handler = Callable[[str, Any, Deps], Awaitable[BaseModel]]

REQUESTS: dict[Op, tuple[type[Request], Handler]] = {
    Op.CREATE_PROJECT: (CreateProject, handlers.create_project),
    Op.LIST_PROJECTS: (ListProjects, handlers.list_projects),
    Op.SHOW_PROJECT: (ShowProject, handlers.show_project),
    Op.LIST_APPS: (ListApps, handlers.list_apps),
    Op.LIST_SERVICES: (ListServices, handlers.list_services),
    Op.STOP_PROJECT: (StopProject, lifecycle.stop_project),
    Op.DELETE_PROJECT: (DeleteProject, lifecycle.delete_project),
    Op.SHOW_MODEL: (ShowModel, trained.show_model),
}
# Requests whose answer is kept, so a repeated request id gets the same answer again.
REMEMBERED = {Op.STOP_PROJECT, Op.DELETE_PROJECT}
# Project starts in hand and not answered yet past which a new start is answered `busy` at
# once: its client asks again after a pause with jitter.
BUSY_AT = 128


class ManagerService:
    """Binds the manager's handlers to the link's request and event topics."""

    def __init__(
        self,
        link: Link,
        deps: Deps,
        *,
        shared_group: str | None = None,
        requests: Link | None = None,
        busy_at: int = BUSY_AT,
    ) -> None:
        """Requests come on ``requests`` if given (a replica's clean session), else on ``link``.

        Answers, events and heartbeats always use ``link``. Past ``busy_at`` starts in hand,
        further starts are answered ``busy``.
        """
        self._link = link
        self._deps = deps
        self._busy_at = busy_at
        self._starting: set[tuple[str, str]] = set()  # (user, request id), not answered yet
        self._malformed = Throttle(log)  # anyone may send them: a few lines a minute
        (requests or link).route(
            topics.ALL_REQUESTS, self.on_request, concurrent=True, shared_group=shared_group
        )
        link.route(topics.ALL_EVENTS, self.on_event)
        link.route(topics.ALL_HEARTBEATS, self.on_heartbeat)

    async def resume(self) -> None:
        """Watch the services that run, and finish starts a previous run left unfinished."""
        await lifecycle.watch_running(self._deps)
        for project_id in await self._deps.store.unfinished_projects(self._deps.host):
            log.info("resuming the start of project %s", project_id)
            await handlers.advance(project_id, self._deps)

    async def reconcile_forever(
        self, stop: asyncio.Event, inventory: Inventory, interval: float
    ) -> None:
        """Every ``interval`` until ``stop``: stop local services that others stopped."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()
            if stop.is_set():
                return
            try:
                await lifecycle.reconcile(self._deps, inventory.running())
            except FlopsError:
                log.exception("reconciling the local services failed; trying again")

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Check service deadlines a few times per deadline until ``stop`` is set."""
        interval = max(0.1, self._deps.service_deadline / 8)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()
            try:
                await lifecycle.check_deadlines(self._deps)
            except FlopsError:
                log.exception("watchdog check failed; trying again")

    async def on_request(self, inbound: Inbound) -> None:
        """Handle one request and answer it; a request it cannot take gets its error."""
        try:
            topic = inbound.parsed_topic()
        except topics.TopicError as exc:
            self._malformed.warning("dropped: %s", exc)
            await self._refuse(inbound, _unknown_operation(inbound.topic))
            return
        if is_object_id(topic.user):
            # A project's training actors log in with its id (broker.accounts), which the
            # users' ACL lines also let write here: no person has such a name.
            self._malformed.warning("dropped a request of %s: a project id", topic.user)
            return
        op = Op(topic.arg)
        if op is Op.CREATE_PROJECT and len(self._starting) >= self._busy_at:
            await self._busy(inbound, topic.user)
            return
        model, handler = REQUESTS[op]
        try:
            request = inbound.decode(model)
        except codec.MessageError as exc:
            self._malformed.warning(
                "bad %s request from %s: %s %s",
                op,
                topic.user,
                shown(str(exc)),
                shown(str(exc.details)),
            )
            await self._refuse(inbound, exc, topic.user)
            return
        if op is not Op.CREATE_PROJECT:
            reply, _ = await self._handle(op, topic.user, request, handler)
            await self._send(topic.user, request.reply_to, reply)
            return
        key = (topic.user, request.request_id)
        if key in self._starting:
            # A resend of a start not answered yet: the answer goes to the same reply topic.
            log.debug("request %s is in hand already", request.request_id)
            return
        self._starting.add(key)
        try:
            reply, result = await self._handle(op, topic.user, request, handler)
            await self._send(topic.user, request.reply_to, reply)
        finally:
            # Answered: a resend from now on finds the project the store made for it.
            self._starting.discard(key)
        if reply.ok and reply.result is not None:
            project_id = str(reply.result["id"])
            log.info(
                "project %s started for %s (request %s)", project_id, topic.user, request.request_id
            )
            known = result if isinstance(result, ProjectView) else None
            await handlers.advance(project_id, self._deps, known)

    async def _busy(self, inbound: Inbound, user: str) -> None:
        """Answer a start ``busy`` without reading more of it than its sender."""
        peek = codec.peek_reply_to(inbound.payload)
        if peek is None:
            return
        error = ErrorBody(
            code="busy",
            message=f"the manager has {len(self._starting)} project starts in hand; "
            "ask again shortly",
        )
        await self._send(user, peek[1], Reply(request_id=peek[0], ok=False, error=error))

    async def _handle(
        self, op: Op, user: str, request: Request, handler: Handler
    ) -> tuple[Reply, BaseModel | None]:
        """Run the handler; its reply (kept if asked) and its result, if it gave one now."""
        if op in REMEMBERED:
            kept = await self._deps.store.answer_for(user, request.request_id)
            if kept is not None:
                return Reply.model_validate(kept), None
        result: BaseModel | None = None
        try:
            result = await handler(user, request, self._deps)
            reply = Reply(
                request_id=request.request_id, ok=True, result=result.model_dump(mode="json")
            )
        except RefusedError as exc:
            log.info("%s %s of %s refused: %s", op, request.request_id, user, shown(str(exc)))
            error = ErrorBody(code=exc.code, message=str(exc), details=exc.details)
            reply = Reply(request_id=request.request_id, ok=False, error=error)
        except Exception as exc:
            log.exception("%s %s of %s failed", op, request.request_id, user)
            message = str(exc) if isinstance(exc, FlopsError) else "the manager failed; see its log"
            error = ErrorBody(code="internal", message=message)
            return Reply(request_id=request.request_id, ok=False, error=error), None
        if op in REMEMBERED:
            await self._deps.store.remember_answer(
                user, request.request_id, reply.model_dump(mode="json")
            )
        return reply, result

    async def on_event(self, inbound: Inbound) -> None:
        """Note who reported, and apply project state changes that events report."""
        try:
            topic = inbound.parsed_topic()
            event = inbound.decode(Event)
        except (topics.TopicError, codec.MessageError):
            return  # the observer logs these
        await events.on_event(topic.user, topic.project_id, event, self._deps)

    async def on_heartbeat(self, inbound: Inbound) -> None:
        """Note a service's sign of life."""
        try:
            beat = inbound.decode(Heartbeat)
        except codec.MessageError as exc:
            self._malformed.warning(
                "dropped heartbeat on %s: %s", shown(inbound.topic), shown(str(exc))
            )
            return
        self._deps.liveness.heard(beat.source)

    async def _refuse(
        self, inbound: Inbound, exc: codec.MessageError | None, user: str | None = None
    ) -> None:
        """Answer a request that cannot be taken with its error, if it says where to."""
        peek = codec.peek_reply_to(inbound.payload)
        user = user or _user_of(inbound.topic)
        if exc is None or peek is None or user is None:
            return
        error = ErrorBody(code=exc.code, message=str(exc), details=exc.details)
        await self._send(user, peek[1], Reply(request_id=peek[0], ok=False, error=error))

    async def _send(self, user: str, reply_to: str, reply: Reply) -> None:
        try:
            topic = topics.reply(user, reply_to)
        except topics.TopicError:
            self._malformed.warning(
                "cannot answer %s: bad reply_to %s", shown(reply.request_id), shown(reply_to)
            )
            return
        payload = codec.encode(reply)
        if len(payload) > codec.MAX_PAYLOAD:
            log.warning(
                "answer to %s is %d bytes; sending an error instead",
                shown(reply.request_id),
                len(payload),
            )
            payload = codec.encode(
                Reply(
                    request_id=reply.request_id,
                    ok=False,
                    error=ErrorBody(
                        code="too_large",
                        message=f"the answer would be {len(payload)} bytes, over "
                        f"the {codec.MAX_PAYLOAD}-byte limit of a message",
                    ),
                )
            )
        await self._link.publish(topic, payload)


def _user_of(topic: str) -> str | None:
    """The user level of a request topic that did not parse, if it is a valid level."""
    parts = topic.split("/")
    try:
        return topics.check_level(parts[3], "user") if len(parts) == 6 else None
    except topics.TopicError:
        return None


def _unknown_operation(topic: str) -> codec.MessageError | None:
    """The error for a request to an operation that does not exist (else ``None``)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[4] != "requests" or parts[5] in set(Op):
        return None
    known = ", ".join(op.value for op in Op)
    return codec.MessageError(
        "unknown_operation", f"no operation {parts[5][:64]!r}; the operations are: {known}"
    )

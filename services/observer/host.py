"""Hosts the observer services of many projects on one MQTT link.

Events are queued in arrival order and written by one task in batches; each event's
broker acknowledgement is released only after its batch is committed, then the stored
entries are published live for followers. History is served on the log-query topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.aio import others_ready
from core.errors import StoreError
from core.logs import Throttle, shown
from mqtt.link import Inbound, Link
from protocol import codec, topics
from protocol.events import Event
from protocol.messages import ErrorBody, LogQuery, Reply
from protocol.states import ProjectState
from services.observer.store import EntryRow, LogStore

log = logging.getLogger(__name__)
BATCH = 512
IDLE_TURNS = 3  # loop turns without a new event that end a batch
OBSERVER_STARTED = "Project Observer started"


@dataclass(frozen=True, slots=True)
class Hosted:
    """An observer this host runs."""

    project_id: str
    user: str
    service_id: str
    name: str


@dataclass(slots=True)
class _Pending:
    user: str
    event: Event
    done: Callable[[], None]
    failed: Callable[[StoreError], None] | None = None  # None: leave it to redelivery
    register: Hosted | None = None  # a new observer, registered with this event


class ObserverHost:
    """Runs the observers of many projects; see the module docstring."""

    def __init__(
        self,
        link: Link,
        store: LogStore,
        started_event_id: Callable[[str], str],
        *,
        answer_unknown: bool = True,
        events: str = topics.ALL_EVENTS,
        queries: str = topics.ALL_LOG_QUERIES,
    ) -> None:
        # ``events`` and ``queries`` narrow the subscriptions, e.g. to one project's topics
        # in a service process that observes a single project.
        self._answer_unknown = answer_unknown  # False where other replicas host other logs
        self._link = link
        self._store = store
        self._started_id = started_event_id
        self._hosted: dict[str, Hosted] = {}
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._malformed = Throttle(log)  # anyone may send them: a few lines a minute
        link.route(events, self.on_event)
        link.route(queries, self.on_query, concurrent=True)

    async def load(self) -> None:
        """Take up again the observers registered before a restart."""
        for project_id, user, service_id, name in await self._store.observers():
            self._hosted[project_id] = Hosted(project_id, user, service_id, name)

    async def deploy(self, hosted: Hosted) -> None:
        """Start observing a project: register it and log that its observer started.

        Both in one transaction of the writer; if it fails, the project is not hosted.
        """
        new = hosted.project_id not in self._hosted
        if new:
            self._hosted[hosted.project_id] = hosted
        event = Event(
            event_id=self._started_id(hosted.service_id),
            project_id=hosted.project_id,
            source=hosted.name,
            text=OBSERVER_STARTED,
        )
        await self.record(hosted.user, event, register=hosted if new else None)

    def hosted(self) -> list[Hosted]:
        """The observers this host runs."""
        return list(self._hosted.values())

    def hosts(self, project_id: str) -> bool:
        """Whether this host runs the observer of ``project_id``."""
        return project_id in self._hosted

    async def record(self, user: str, event: Event, *, register: Hosted | None = None) -> None:
        """Log an event of this process without the broker; return once it is stored.

        ``StoreError`` if the write failed. Followers get it live like any other entry.
        """
        await self.queue(user, event, register=register)

    def queue(
        self, user: str, event: Event, *, register: Hosted | None = None
    ) -> asyncio.Future[None]:
        """Queue an event of this process now; the future is done once it is stored.

        Events queued one after the other without a wait between them are stored in one
        transaction, in the order queued (a stage's announcements and its state entry).
        """
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done() -> None:
            if not stored.done():
                stored.set_result(None)

        def failed(exc: StoreError) -> None:
            if not stored.done():
                stored.set_exception(exc)

        self._queue.put_nowait(_Pending(user, event, done, failed, register))
        return stored

    async def undeploy(self, project_id: str, *, purge: bool = False) -> None:
        """Stop observing a project; its log stays readable unless ``purge``."""
        self._hosted.pop(project_id, None)
        await self._store.unregister(project_id, purge=purge)

    async def on_event(self, inbound: Inbound) -> None:
        """Queue an event of a hosted project; its ack waits for the durable write."""
        try:
            topic = inbound.parsed_topic()
            event = inbound.decode(Event)
        except (topics.TopicError, codec.MessageError) as exc:
            self._malformed.warning(
                "dropped message on %s: %s", shown(inbound.topic), shown(str(exc))
            )
            return
        hosted = self._hosted.get(topic.project_id)
        if hosted is None or hosted.user != topic.user or event.project_id != topic.project_id:
            self._malformed.warning(
                "dropped event for unknown project %s on %s", event.project_id, inbound.topic
            )
            return
        self._queue.put_nowait(_Pending(topic.user, event, inbound.hold()))

    async def write_forever(self) -> None:
        """The single writer: batch, commit, release acks, publish live entries."""
        while True:
            batch = [await self._queue.get()]
            # A read's messages reach this queue in the link's next turn, and a burst takes
            # several reads: while the queue keeps growing, give it turns, so a burst becomes
            # one transaction instead of one per read. Events of this process
            # with nothing else to run are written at once, with whatever is queued behind
            # them (a lone start's entries, queued together).
            lone = batch[0].failed is not None and not others_ready()
            idle = IDLE_TURNS if lone else 0
            while idle < IDLE_TURNS and self._queue.qsize() < BATCH:
                waiting = self._queue.qsize()
                await asyncio.sleep(0)
                idle = 0 if self._queue.qsize() > waiting else idle + 1
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def flush(self) -> None:
        """Write whatever is queued (used when draining)."""
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch:
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        # Events of a project undeployed meanwhile are dropped (and acknowledged).
        events = [p.event for p in batch if p.event.project_id in self._hosted]
        new = [p.register for p in batch if p.register is not None]
        rows = [(h.project_id, h.user, h.service_id, h.name) for h in new]
        try:
            entries = await self._store.append(events, rows)
        except StoreError as exc:
            # Not acknowledged: the broker delivers these events again after a restart; the
            # events of this process fail their senders, and new observers are not hosted.
            log.exception("could not store %d events", len(batch))
            for hosted in new:
                self._hosted.pop(hosted.project_id, None)
            for pending in batch:
                if pending.failed is not None:
                    pending.failed(exc)
            return
        for pending in batch:
            pending.done()
        users = {p.event.project_id: p.user for p in batch}
        # QoS 0 without waiting: entries are stored already, and a follower that misses one
        # sees the gap in the sequence numbers and asks for it.
        sent = sum(
            self._link.publish_nowait(
                topics.log(users[e.project_id], e.project_id), codec.encode(e)
            )
            for e in entries
        )
        if sent < len(entries):
            log.info("%d live log entries not published (followers catch up)", len(entries) - sent)

    async def on_query(self, inbound: Inbound) -> None:
        """Answer a follower's history query, for the user's own projects only.

        A query that is not valid is answered with its error when it names ``reply_to``
        (by the observer that would answer it if it were valid).
        """
        try:
            topic = inbound.parsed_topic()
        except topics.TopicError as exc:
            self._malformed.warning(
                "dropped log query on %s: %s", shown(inbound.topic), shown(str(exc))
            )
            return
        owner = await self._store.owner(topic.project_id)
        if owner is None and not self._answer_unknown:
            return  # another replica hosts it (or nobody does): let that one answer
        try:
            query = inbound.decode(LogQuery)
        except codec.MessageError as exc:
            self._malformed.warning(
                "bad log query on %s: %s %s",
                shown(inbound.topic),
                shown(str(exc)),
                shown(str(exc.details)),
            )
            await self._refuse(topic.user, inbound.payload, exc)
            return
        reply_topic = topics.reply(topic.user, query.reply_to)
        if owner != topic.user:
            answer = Reply(
                request_id=query.request_id,
                ok=False,
                error=ErrorBody(code="not_found", message=f"no log for project {topic.project_id}"),
            )
        else:
            # Served from rows as JSON objects: a thousand entries are neither validated
            # nor built as models here (the reader validates them).
            page = await self.page(topic.project_id, query)
            answer = Reply.model_construct(request_id=query.request_id, ok=True, result=page)
        await self._link.publish(reply_topic, codec.encode(answer))

    async def _refuse(self, user: str, payload: bytes, exc: codec.MessageError) -> None:
        """Answer an invalid query with its error, if it says where to."""
        peek = codec.peek_reply_to(payload)
        if peek is None:
            return
        try:
            reply_topic = topics.reply(user, peek[1])
        except topics.TopicError:
            return
        error = ErrorBody(code=exc.code, message=str(exc), details=exc.details)
        answer = Reply(request_id=peek[0], ok=False, error=error)
        await self._link.publish(reply_topic, codec.encode(answer))

    async def page(self, project_id: str, query: LogQuery) -> dict[str, Any]:
        """One page of a project's log for ``query``: the JSON object of a ``LogPage``.

        ``more`` only when an entry after the page exists (one more row is read to know).
        """
        if query.last is not None:
            rows = _fit(list(reversed(await self._store.tail_rows(project_id, query.last))))
            entries = rows[::-1]
            more = False
        else:
            found = await self._store.read_rows(project_id, query.first, query.limit + 1)
            entries = _fit(found[: query.limit])
            more = len(entries) < len(found)
        next_seq = entries[-1]["seq"] + 1 if entries else query.first
        page: dict[str, Any] = {"v": 1, "project_id": project_id, "entries": entries}
        state = await self._store.state(project_id) or ProjectState.STARTING
        page |= {"next_seq": next_seq, "state": state.value, "more": more}
        training = await self._store.last_round(project_id)
        return page if training is None else page | {"training": training}


PAGE_BYTES = 192 * 1024  # a page stays under the message size limit (codec.MAX_PAYLOAD)


def _fit(entries: list[EntryRow]) -> list[EntryRow]:
    """The leading entries whose encoded size fits in one page (at least one)."""
    size = 0
    for count, entry in enumerate(entries):
        size += len(entry["text"].encode()) + len(entry["source"]) + 200  # fields and JSON
        if "data" in entry:
            size += len(json.dumps(entry["data"]))
        if size > PAGE_BYTES and count:
            return entries[:count]
    return entries

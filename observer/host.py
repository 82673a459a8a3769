"""Hosts the observer services of many projects on one MQTT link.

Events are queued in arrival order and written by one task in batches; each event's
broker acknowledgement is released only after its batch is committed, then the stored
entries are published live for followers. History is served on the log-query topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from broker import codec, topics
from broker.link import Inbound, Link
from broker.messages import ErrorBody, Event, LogEntry, LogPage, LogQuery, Reply
from core.errors import StoreError
from observer.store import LogStore

log = logging.getLogger(__name__)
BATCH = 512
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
        link.route(events, self.on_event)
        link.route(queries, self.on_query, concurrent=True)

    async def load(self) -> None:
        """Take up again the observers registered before a restart."""
        for project_id, user, service_id, name in await self._store.observers():
            self._hosted[project_id] = Hosted(project_id, user, service_id, name)

    async def deploy(self, hosted: Hosted) -> None:
        """Start observing a project: register it and log that its observer started."""
        if hosted.project_id not in self._hosted:
            await self._store.register(
                hosted.project_id, hosted.user, hosted.service_id, hosted.name
            )
            self._hosted[hosted.project_id] = hosted
        stored = asyncio.get_running_loop().create_future()
        event = Event(
            event_id=self._started_id(hosted.service_id),
            project_id=hosted.project_id,
            source=hosted.name,
            text=OBSERVER_STARTED,
        )
        self._queue.put_nowait(_Pending(hosted.user, event, lambda: stored.set_result(None)))
        await stored

    async def undeploy(self, project_id: str, *, purge: bool = False) -> None:
        """Stop observing a project; its log stays readable unless ``purge``."""
        self._hosted.pop(project_id, None)
        await self._store.unregister(project_id, purge=purge)

    async def on_event(self, inbound: Inbound) -> None:
        """Queue an event of a hosted project; its ack waits for the durable write."""
        try:
            topic = topics.Topic.parse(inbound.topic)
            event = codec.decode(Event, inbound.payload)
        except (topics.TopicError, codec.MessageError) as exc:
            log.warning("dropped message on %s: %s", inbound.topic, exc)
            return
        hosted = self._hosted.get(topic.project_id)
        if hosted is None or hosted.user != topic.user or event.project_id != topic.project_id:
            log.warning(
                "dropped event for unknown project %s on %s", event.project_id, inbound.topic
            )
            return
        self._queue.put_nowait(_Pending(topic.user, event, inbound.hold()))

    async def write_forever(self) -> None:
        """The single writer: batch, commit, release acks, publish live entries."""
        while True:
            batch = [await self._queue.get()]
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
        try:
            entries = await self._store.append(events)
        except StoreError:
            # Not acknowledged: the broker delivers these events again after a restart.
            log.exception("could not store %d events", len(batch))
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
        """Answer a follower's history query, for the user's own projects only."""
        try:
            topic = topics.Topic.parse(inbound.topic)
            query = codec.decode(LogQuery, inbound.payload)
        except (topics.TopicError, codec.MessageError) as exc:
            log.warning("dropped log query on %s: %s", inbound.topic, exc)
            return
        reply_topic = topics.reply(topic.user, query.reply_to)
        owner = await self._store.owner(topic.project_id)
        if owner is None and not self._answer_unknown:
            return  # another replica hosts it (or nobody does): let that one answer
        if owner != topic.user:
            answer = Reply(
                request_id=query.request_id,
                ok=False,
                error=ErrorBody(code="not_found", message=f"no log for project {topic.project_id}"),
            )
        else:
            page = await self.page(topic.project_id, query)
            answer = Reply(
                request_id=query.request_id, ok=True, result=page.model_dump(mode="json")
            )
        await self._link.publish(reply_topic, codec.encode(answer))

    async def page(self, project_id: str, query: LogQuery) -> LogPage:
        """One page of a project's log for ``query``."""
        if query.last is not None:
            entries = _fit(list(reversed(await self._store.tail(project_id, query.last))))[::-1]
            more = False
        else:
            found = await self._store.read(project_id, query.from_seq, query.limit)
            entries = _fit(found)
            more = len(entries) < len(found) or len(found) == query.limit
        next_seq = entries[-1].seq + 1 if entries else query.from_seq
        return LogPage(
            project_id=project_id,
            entries=entries,
            next_seq=next_seq,
            state=await self._store.state(project_id),
            more=more,
        )


PAGE_BYTES = 192 * 1024  # a page stays under the message size limit (codec.MAX_PAYLOAD)


def _fit(entries: list[LogEntry]) -> list[LogEntry]:
    """The leading entries whose encoded size fits in one page (at least one)."""
    size = 0
    for count, entry in enumerate(entries):
        size += len(entry.text.encode()) + len(entry.source) + 200  # fields and JSON
        if size > PAGE_BYTES and count:
            return entries[:count]
    return entries

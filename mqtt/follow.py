"""Read a project's observer log from any sequence number and follow it live, gapless.

The live topic is subscribed before history is read, once; live entries are merged by
sequence number, and only a gap (an entry past the next expected number, or a lost
connection) triggers a catch-up query, so nothing is missed and a quiet log costs nothing.
Following ends when the project reaches a final state: nothing can follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mqtt.requester import Session
from protocol import codec, topics
from protocol.events import LogEntry
from protocol.messages import LogPage, LogQuery, new_request_id
from protocol.states import ProjectState

PAGE = 1000


async def _page(
    sess: Session, project_id: str, timeout: float, *, from_seq: int = 1, last: int | None = None
) -> LogPage:
    query = LogQuery(
        request_id=new_request_id(),
        reply_to=sess.client_id,
        from_seq=from_seq if last is None else None,
        last=last,
        limit=PAGE,
    )
    return await sess.request(topics.log_query(sess.user, project_id), query, LogPage, timeout)


async def last_page(sess: Session, project_id: str, timeout: float) -> LogPage:
    """The page of a project's last entry: its state and ``training`` summary, cheaply."""
    return await _page(sess, project_id, timeout, last=1)


async def read_log(
    sess: Session,
    project_id: str,
    emit: Callable[[LogEntry], None],
    *,
    timeout: float,
    from_seq: int = 1,
    last: int | None = None,
    follow: bool = False,
    until_rest: bool = False,
) -> ProjectState:
    """Emit entries from ``from_seq`` (or the last ``last``), then live ones with ``follow``.

    Following returns once the project is in a final state (FAILED, STOPPED); with
    ``until_rest`` already once it rests (BUILDING too).
    """
    live = await sess.subscribe(topics.log(sess.user, project_id)) if follow else None
    next_seq, state = await _catch_up(sess, project_id, emit, timeout, from_seq, last)
    pending: dict[int, LogEntry] = {}
    while live is not None and not _done(state, until_rest):
        payload = await sess.next_message(live)
        if payload is not None:
            try:
                entry = codec.decode(LogEntry, payload)
            except codec.MessageError:
                continue
            if entry.seq >= next_seq:
                pending[entry.seq] = entry
        if payload is None or (pending and next_seq not in pending):  # a gap: ask for it
            next_seq, state = await _catch_up(sess, project_id, emit, timeout, next_seq, None)
            pending = {s: e for s, e in pending.items() if s >= next_seq}
        while next_seq in pending and not _done(state, until_rest):
            entry = pending.pop(next_seq)
            emit(entry)
            next_seq += 1
            state = entry.state or state
    return state


def _done(state: ProjectState, until_rest: bool) -> bool:
    return state.final or (until_rest and state.resting)


async def _catch_up(
    sess: Session,
    project_id: str,
    emit: Callable[[LogEntry], None],
    timeout: float,
    from_seq: int,
    last: int | None,
) -> tuple[int, ProjectState]:
    page = await _page(sess, project_id, timeout, from_seq=from_seq, last=last)
    while True:
        if last is not None or not page.more:
            for entry in page.entries:
                emit(entry)
            return page.next_seq, page.state
        # Ask for the next page before printing this one: the observer builds it meanwhile.
        following = asyncio.ensure_future(_page(sess, project_id, timeout, from_seq=page.next_seq))
        try:
            for entry in page.entries:
                emit(entry)
        except BaseException:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            raise
        page = await following

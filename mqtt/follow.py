"""Read a project's observer log from any sequence number and follow it live, gapless.

The live topic is subscribed before history is read; live entries are merged by sequence
number, and a gap (or a quiet spell) triggers a catch-up query, so nothing is missed.
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
RESYNC_AFTER = 5.0


async def _page(
    sess: Session, project_id: str, timeout: float, *, from_seq: int = 1, last: int | None = None
) -> LogPage:
    query = LogQuery(
        request_id=new_request_id(),
        reply_to=sess.client_id,
        from_seq=from_seq,
        last=last,
        limit=PAGE,
    )
    return await sess.request(topics.log_query(sess.user, project_id), query, LogPage, timeout)


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
) -> ProjectState | None:
    """Emit entries from ``from_seq`` (or the last ``last``), then live ones with ``follow``.

    With ``until_rest`` it returns once the project reaches a resting state.
    """
    live = await sess.subscribe(topics.log(sess.user, project_id)) if follow else None
    next_seq, state = await _catch_up(sess, project_id, emit, timeout, from_seq, last)
    if live is None or (until_rest and state is not None and state.resting):
        return state
    pending: dict[int, LogEntry] = {}
    while True:
        try:
            async with asyncio.timeout(RESYNC_AFTER):
                payload = await live.get()
        except TimeoutError:
            payload = None
        if payload is not None:
            try:
                entry = codec.decode(LogEntry, payload)
            except codec.MessageError:
                continue
            if entry.seq >= next_seq:
                pending[entry.seq] = entry
        if payload is None or (pending and next_seq not in pending):
            next_seq, state = await _catch_up(sess, project_id, emit, timeout, next_seq, None)
            pending = {s: e for s, e in pending.items() if s >= next_seq}
        while next_seq in pending:
            entry = pending.pop(next_seq)
            emit(entry)
            next_seq += 1
            if entry.state is not None:
                state = entry.state
        if until_rest and state is not None and state.resting:
            return state


async def _catch_up(
    sess: Session,
    project_id: str,
    emit: Callable[[LogEntry], None],
    timeout: float,
    from_seq: int,
    last: int | None,
) -> tuple[int, ProjectState | None]:
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

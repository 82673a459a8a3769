"""The follower against a stub session: history once, a query only on a gap, an end.

The real broker path is in tests/integration (every project start follows its log).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from mqtt.follow import read_log
from mqtt.requester import Session
from protocol import codec
from protocol.events import Level, LogEntry
from protocol.messages import LogPage, LogQuery
from protocol.states import FINAL, RESTING, ProjectState

pytestmark = pytest.mark.timeout(10)
P = "d" * 24


def entry(seq: int, state: ProjectState | None = None) -> LogEntry:
    return LogEntry(
        seq=seq, event_id=f"{seq:032x}", project_id=P, ts=float(seq), source="s",
        level=Level.INFO, text=f"entry {seq}", state=state,
    )  # fmt: skip


class StubSession:
    """An observer's log and its live topic: ``stored`` entries of ``log`` exist so far;
    each one handed out live (``live``: seq numbers) is stored, with all before it."""

    def __init__(self, log: list[LogEntry], stored: int, live: tuple[int, ...] = ()) -> None:
        self.user = "Admin"
        self.client_id = "cli-stub"
        self.log = log
        self.stored = stored
        self.queries: list[LogQuery] = []
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        for seq in live:
            self.queue.put_nowait(seq)

    async def subscribe(self, _topic: object) -> asyncio.Queue[int]:
        return self.queue

    async def next_message(self, queue: asyncio.Queue[int]) -> bytes | None:
        seq = await queue.get()  # blocks forever once the live entries are used up
        self.stored = max(self.stored, seq)
        return codec.encode(self.log[seq - 1])

    async def request(self, _topic: object, query: LogQuery, _result: Any, _t: float) -> LogPage:
        self.queries.append(query)
        stored = self.log[: self.stored]
        found = [e for e in stored if e.seq >= query.first][: query.limit]
        state = next((e.state for e in reversed(stored) if e.state), ProjectState.STARTING)
        return LogPage(
            project_id=P,
            entries=found,
            next_seq=found[-1].seq + 1 if found else query.first,
            state=state,
        )


async def follow(sess: StubSession, **options: Any) -> tuple[ProjectState, list[int]]:
    seen: list[int] = []
    state = await read_log(
        cast(Session, sess), P, lambda e: seen.append(e.seq), timeout=5, follow=True, **options
    )
    return state, seen


async def test_history_is_read_once_and_again_only_on_a_gap() -> None:
    log = [entry(1), entry(2), entry(3, ProjectState.BUILDING), entry(4), entry(5), entry(6)]
    log += [entry(7), entry(8, ProjectState.STOPPED)]
    # 1-3 are history; 4 and 5 arrive live; 6 is lost on the way; 7 shows the gap; 8 stops
    sess = StubSession(log, 3, (4, 5, 7, 8))
    state, seen = await follow(sess)
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [q.first for q in sess.queries] == [1, 6]  # history, then the gap
    assert state is ProjectState.STOPPED  # a final state ends following by itself


@pytest.mark.parametrize("final", [ProjectState.FAILED, ProjectState.STOPPED])
async def test_following_a_project_in_a_final_state_ends_after_its_history(
    final: ProjectState,
) -> None:
    sess = StubSession([entry(1), entry(2, final)], 2)
    assert await follow(sess) == (final, [1, 2])
    assert len(sess.queries) == 1


@pytest.mark.parametrize("resting", sorted(RESTING - FINAL))
async def test_until_rest_ends_at_a_resting_state_that_is_not_final(
    resting: ProjectState,
) -> None:
    sess = StubSession([entry(1), entry(2, resting)], 1, (2,))
    assert await follow(sess, until_rest=True) == (resting, [1, 2])


def test_a_query_names_from_seq_or_last_never_both() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        LogQuery(request_id="r" * 16, reply_to="c", from_seq=2, last=3)
    assert LogQuery(request_id="r" * 16, reply_to="c", last=3).from_seq is None

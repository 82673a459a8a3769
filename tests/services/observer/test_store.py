from pathlib import Path

from protocol.events import Event, Facts, RoundMetrics
from protocol.states import ProjectState
from services.observer.store import LAST_ROUND, LogStore

P1, P2 = "a" * 24, "b" * 24


def ev(project: str, text: str, event_id: str | None = None, **kw: object) -> Event:
    extra = {"event_id": event_id} if event_id else {}
    return Event(project_id=project, source="test", text=text, **extra, **kw)  # type: ignore[arg-type]


async def test_sequence_numbers_are_gapless_per_project_and_survive_reopen(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    made = await store.append([ev(P1, "a"), ev(P2, "x"), ev(P1, "b")])
    assert [(e.project_id, e.seq) for e in made] == [(P1, 1), (P2, 1), (P1, 2)]
    await store.close()
    store = await LogStore.open(tmp_path / "o.db")
    made = await store.append([ev(P1, "c")])
    assert made[0].seq == 3
    assert [e.text for e in await store.read(P1, 1, 10)] == ["a", "b", "c"]
    assert [e.text for e in await store.tail(P1, 2)] == ["b", "c"]
    await store.close()


async def test_a_redelivered_event_is_stored_once_without_a_gap(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    once = ev(P1, "once", event_id="1" * 32)
    await store.append([once, once])
    await store.append([once, ev(P1, "next")])
    assert [(e.seq, e.text) for e in await store.read(P1, 1, 10)] == [(1, "once"), (2, "next")]
    await store.close()


async def test_the_last_state_is_remembered(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    assert await store.state(P1) is None
    await store.append([ev(P1, "b", state=ProjectState.BUILDING), ev(P1, "plain")])
    assert await store.state(P1) is ProjectState.BUILDING
    await store.close()


async def test_event_data_round_trips_through_the_log(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "observer.db")
    metrics = RoundMetrics(round=1, loss=0.5, accuracy=0.75, examples=100, learners=2, seconds=1.5)
    facts = Facts(type="images_ready", values={"learner": "reg/u/r/learner:abc"})
    try:
        await store.append([ev(P1, "round 1", data=metrics)])
        await store.append([ev(P1, "images", data=facts)])
        entries = await store.read(P1, 1, 10)
    finally:
        await store.close()
    assert [e.data for e in entries] == [metrics, facts]


async def test_the_last_round_is_read_by_its_key_not_by_scanning_the_log(tmp_path: Path) -> None:
    """What ``flops status`` reads costs the same after 3 rounds or 3,000."""
    store = await LogStore.open(tmp_path / "o.db")
    try:
        plan = await store._fetch(f"EXPLAIN QUERY PLAN {LAST_ROUND}", (P1,))  # noqa: SLF001
    finally:
        await store.close()
    assert [str(r[3]) for r in plan] == ["SEARCH rounds USING PRIMARY KEY (project_id=?)"]


async def test_a_log_from_before_the_rounds_table_gets_its_last_rounds_once(tmp_path: Path) -> None:
    store = await LogStore.open(tmp_path / "o.db")
    first, last = (
        RoundMetrics(round=n, loss=0.5, accuracy=0.75, examples=100, learners=2, seconds=1.5)
        for n in (1, 2)
    )
    await store.append([ev(P1, "1", data=first), ev(P1, "2", data=last), ev(P1, "end")])
    await store._exec("DELETE FROM rounds", ())  # noqa: SLF001 - as an older version left it
    await store._exec("PRAGMA user_version = 0", ())  # noqa: SLF001
    await store.close()
    store = await LogStore.open(tmp_path / "o.db")
    try:
        assert await store.last_round(P1) == last.model_dump(mode="json")
    finally:
        await store.close()

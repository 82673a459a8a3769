import json

import pytest

from protocol import codec
from protocol.codec import MessageError
from protocol.events import Event, Facts, RoundMetrics
from protocol.messages import CreateProject

GOOD = CreateProject(request_id="r" * 16, reply_to="cli-1", sla={"a": 1})


def test_round_trip() -> None:
    assert codec.decode(CreateProject, codec.encode(GOOD)) == GOOD


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe\x00", "bad_encoding"),
        (b"{nope", "bad_json"),
        (b"[]", "bad_schema"),
        (b'{"v": 2, "request_id": "rrrrrrrr", "reply_to": "c", "sla": {}}', "bad_version"),
        (b'{"request_id": "rrrrrrrr", "reply_to": "c", "sla": {}, "extra": 1}', "bad_schema"),
        (b'{"request_id": "r", "reply_to": "c", "sla": {}}', "bad_schema"),
        (b'{"request_id": "rrrrrrrr", "reply_to": "../x", "sla": {}}', "bad_schema"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"sla": "' + b"x" * (codec.MAX_PAYLOAD + 1) + b'"}', "too_large"),
    ],
)
def test_hostile_payloads_get_a_stable_code(payload: bytes, code: str) -> None:
    with pytest.raises(MessageError) as caught:
        codec.decode(CreateProject, payload)
    assert caught.value.code == code


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    event = Event(project_id="a" * 24, source="s", text="[" * 100)
    assert codec.decode(Event, codec.encode(event)).text == "[" * 100


def test_peek_finds_whom_to_answer() -> None:
    raw = json.dumps({"request_id": "abc", "reply_to": "cli-9", "junk": 1}).encode()
    assert codec.peek_reply_to(raw) == ("abc", "cli-9")
    assert codec.peek_reply_to(b"\xff") is None


@pytest.mark.parametrize(
    ("depth", "accepted"), [(codec.MAX_DEPTH, True), (codec.MAX_DEPTH + 1, False)]
)
def test_nesting_limit_counts_containers_after_parsing(depth: int, accepted: bool) -> None:
    inner: object = 1
    for _ in range(depth - 1):  # the message object itself is the outermost container
        inner = {"k": inner}
    payload = json.dumps({"request_id": "r" * 16, "reply_to": "c", "sla": inner}).encode()
    if accepted:
        assert codec.decode(CreateProject, payload).sla == inner
    else:
        with pytest.raises(MessageError) as caught:
            codec.decode(CreateProject, payload)
        assert caught.value.code == "too_deep"


def test_event_data_is_typed_by_its_tag_and_other_tags_are_facts() -> None:
    base = {"project_id": "a" * 24, "source": "aggregator", "text": "round 1"}
    metrics = {"type": "round", "round": 1, "loss": 0.4, "accuracy": 0.9}
    metrics |= {"examples": 10, "learners": 2, "seconds": 0.5}
    event = codec.decode(Event, json.dumps({**base, "data": metrics}).encode())
    assert isinstance(event.data, RoundMetrics) and event.data_type == "round"
    with pytest.raises(MessageError) as bad:
        codec.decode(Event, json.dumps({**base, "data": {**metrics, "loss": "x"}}).encode())
    assert any("loss" in d for d in bad.value.details)
    other = {"type": "images_ready", "values": {"learner": "r/u/x:1"}}
    event = codec.decode(Event, json.dumps({**base, "data": other}).encode())
    assert isinstance(event.data, Facts) and event.data.values == {"learner": "r/u/x:1"}
    assert codec.decode(Event, codec.encode(event)) == event

import json

import pytest

from protocol import codec
from protocol.codec import MessageError
from protocol.messages import CreateProject, Event

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

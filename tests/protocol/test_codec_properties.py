"""Property test: decoding any bytes gives the message or a MessageError, nothing else."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.events import Event
from protocol.messages import CreateProject, LogQuery
from tests.strategies import payloads

VALID = json.loads(
    codec.encode(CreateProject(request_id="valid-001", reply_to="c", sla={"customerID": "Fuzz"}))
)


@settings(max_examples=1000, deadline=None)
@given(payloads(VALID), st.sampled_from([CreateProject, Event, LogQuery]))
def test_decode_accepts_or_raises_message_error(raw: bytes, model: type) -> None:
    try:
        codec.decode(model, raw)
    except codec.MessageError as exc:
        assert exc.code in {
            "too_large",
            "too_deep",
            "bad_encoding",
            "bad_json",
            "bad_schema",
            "bad_version",
        }

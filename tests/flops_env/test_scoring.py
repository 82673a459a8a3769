import json

import numpy as np
import pytest

from flops_env import scoring
from flops_env.scoring import BadInputError, decode, encode, media_type

pytestmark = pytest.mark.timeout(10)

ROWS = [[1, 2, 3], [4, 5, 6]]


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "doc",
    [
        {"inputs": ROWS},
        {"instances": ROWS},
        {"inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}},
        {"instances": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]},
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": ROWS}},
        {"dataframe_split": {"index": [0, 1], "data": ROWS}},
        {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]},
    ],
)
@pytest.mark.parametrize("parser", ["orjson", "json"])
def test_every_json_format_of_mlflow_gives_the_same_rows(
    doc: object, parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if parser == "json":  # an environment without orjson
        monkeypatch.setattr(scoring, "ORJSON", None)
    assert decode(body(doc), "application/json", 3).tolist() == ROWS


def test_what_only_the_standard_library_parses_is_parsed_as_it_does() -> None:
    assert scoring.ORJSON is not None  # the test venv has it, as the trained-model image
    raw = b'{"inputs": [[NaN, -Infinity, 1e400, 123456789012345678901234567890]]}'
    rows = decode(raw, None, 4)
    assert np.isnan(rows[0, 0])
    assert rows[0, 1:3].tolist() == [float("-inf"), float("inf")]
    assert rows[0, 3] == 123456789012345678901234567890.0


def test_csv_with_and_without_a_header_gives_the_same_rows() -> None:
    assert decode(b"a,b,c\n1,2,3\n4,5,6\n", "text/csv", 3).tolist() == ROWS
    assert decode(b"1,2,3\r\n4,5,6\r\n", "text/csv; charset=utf-8", None).tolist() == ROWS


def test_no_content_type_is_read_as_json() -> None:
    assert decode(body({"inputs": ROWS}), None, None).shape == (2, 3)


@pytest.mark.parametrize(
    ("raw", "content_type", "message"),
    [
        (b"{", "application/json", "not valid JSON"),
        (b'{"inputs": [[1, 2, 3]]', "application/json", "not valid JSON: Expecting ','"),
        (b"[" * 100_000, "application/json", "not valid JSON: it is nested too deeply"),
        (body(ROWS), "application/json", "exactly one of the fields .*received a list"),
        (body({"inputs": ROWS, "instances": ROWS}), None, "received the fields inputs, instances"),
        (body({"rows": ROWS}), None, "received the fields rows"),
        (body({"inputs": ROWS, "params": {}}), None, "received the fields inputs, params"),
        (body({"inputs": []}), None, "no rows"),
        (body({"inputs": [1, 2, 3]}), None, "list of rows .2 dimensions.; received 1"),
        (body({"inputs": [[1, 2], [3]]}), None, "lists of numbers of one length"),
        (body({"inputs": [["a", "b", "c"]]}), None, "lists of numbers"),
        (body({"inputs": [[1, 2]]}), None, "expects 3 values per row; received 2"),
        (body({"inputs": 5}), None, "must be a list of rows"),
        (body({"inputs": {"a": [1], "b": [1, 2]}}), None, "lists of one length"),
        (body({"dataframe_split": {"data": 3}}), None, '"data": a list of rows'),
        (body({"dataframe_split": {"columns": ["a"], "data": ROWS}}), None, "row 0 does not"),
        (body({"dataframe_split": {"data": ROWS, "dtypes": []}}), None, "unknown fields: dtypes"),
        (body({"dataframe_records": [{"a": 1}, {"b": 2}]}), None, "row 1 has other fields"),
        (b"a,b,c\n1,2\n", "text/csv", "CSV line 2 does not have 3 values"),
        (b"\xff\xfe", "application/json", "not UTF-8"),
    ],
)
def test_bad_input_is_refused_with_a_reason(raw: bytes, content_type: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message) as caught:
        decode(raw, content_type, 3)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json; charset=latin-1", "text/csv; x=1"]
)
def test_other_media_types_are_refused_with_415(content_type: str) -> None:
    with pytest.raises(BadInputError) as caught:
        media_type(content_type)
    assert caught.value.status == 415


def test_predictions_are_encoded_as_mlflow_does() -> None:
    assert json.loads(encode(np.array([1, 2]))) == {"predictions": [1, 2]}
    assert json.loads(encode(["a"])) == {"predictions": ["a"]}

"""The request side of MLflow's scoring protocol: a body in, a matrix of rows out.

``POST /invocations`` takes, as ``application/json``, one object with exactly one of

    {"inputs": [[...], ...]}             rows (a list of lists of numbers), or
                                         {"col": [...], ...} columns of equal length
    {"instances": [[...], ...]}          the same, TF-serving's other name
    {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
    {"dataframe_records": [{"col": v, ...}, ...]}

or ``text/csv`` (rows of numbers, an optional header line of column names). Columns are
taken in the order given: the models served here were trained on unnamed arrays. Anything
else is a ``BadInputError`` whose message says what was wrong. Standard library and numpy;
JSON is parsed by orjson where it is installed (the trained-model image has it: 784 numbers
in a quarter of the standard library's time), and by the standard library's ``json``
whenever orjson refuses a body, so what is accepted, and every error, is ``json``'s.
"""

from __future__ import annotations

import csv
import io
import json
from importlib import import_module
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

JSON = "application/json"
CSV = "text/csv"
FORMATS = ("inputs", "instances", "dataframe_split", "dataframe_records")
REQUIRED = f"The input must be a JSON object with exactly one of the fields {', '.join(FORMATS)}"
ENCODER = json.JSONEncoder(separators=(",", ":"))


def _optional(module: str) -> ModuleType | None:
    try:
        return import_module(module)
    except ImportError:
        return None


ORJSON = _optional("orjson")


class BadInputError(Exception):
    """The request cannot be scored; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def media_type(content_type: str | None) -> str:
    """The request's media type, JSON when absent; only UTF-8 text is accepted."""
    if not content_type or content_type == JSON:
        return JSON
    kind, *params = (part.strip() for part in content_type.split(";"))
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            raise BadInputError(
                f"unsupported content type parameter {param!r} (only charset=utf-8)", 415
            )
    kind = kind.lower()
    if kind not in (JSON, CSV):
        raise BadInputError(f"This predictor only supports {JSON} and {CSV}; got {kind!r}", 415)
    return kind


def decode(body: bytes, content_type: str | None, width: int | None) -> npt.NDArray[Any]:
    """The rows to predict, a 2-D numeric array, from a request body."""
    kind = media_type(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"the body is not UTF-8: {exc}") from None
    rows = rows_from_csv(text) if kind == CSV else rows_from_json(text)
    return matrix(rows, width)


def parse_json(text: str) -> Any:
    """The JSON document ``text``: orjson's parse, or ``json``'s where orjson refuses it.

    orjson refuses ``NaN`` and ``Infinity``, numbers past a double's range and lone
    surrogates, which ``json`` accepts, and invalid JSON, for which ``json``'s error is given.
    """
    if ORJSON is not None:
        try:
            return ORJSON.loads(text)
        except ValueError:
            pass
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInputError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadInputError("the body is not valid JSON: it is nested too deeply") from None


def rows_from_json(text: str) -> list[Any]:
    """The rows of a JSON request in one of the four formats."""
    doc = parse_json(text)
    if not isinstance(doc, dict):
        raise BadInputError(f"{REQUIRED}; received a {type(doc).__name__}")
    given = [key for key in FORMATS if key in doc]
    others = sorted(set(doc) - set(FORMATS))
    if len(given) != 1 or others:
        raise BadInputError(f"{REQUIRED}; received the fields {', '.join(sorted(doc)) or 'none'}")
    value = doc[given[0]]
    if given[0] == "dataframe_split":
        return _split(value)
    if given[0] == "dataframe_records":
        return _records(value, given[0])
    if isinstance(value, dict):
        return _columns(value)
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        return _records(value, given[0])
    if not isinstance(value, list):
        raise BadInputError(f"{given[0]} must be a list of rows; received a {type(value).__name__}")
    return value


def _split(value: Any) -> list[Any]:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise BadInputError('dataframe_split must be an object with "data": a list of rows')
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise BadInputError(f"dataframe_split has unknown fields: {', '.join(extra)}")
    columns, rows = value.get("columns"), list(value["data"])
    if columns is not None:
        if not isinstance(columns, list):
            raise BadInputError("dataframe_split columns must be a list of names")
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadInputError(f"dataframe_split row {i} does not have {len(columns)} values")
    return rows


def _records(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise BadInputError(f"{field} must be a list of objects (one per row)")
    keys = list(value[0]) if value else []
    for i, record in enumerate(value):
        if list(record) != keys:
            raise BadInputError(f"{field} row {i} has other fields than row 0")
    return [list(record.values()) for record in value]


def _columns(value: dict[str, Any]) -> list[Any]:
    lengths = {len(col) if isinstance(col, list) else -1 for col in value.values()}
    if not value or -1 in lengths or len(lengths) != 1:
        raise BadInputError("named inputs must be lists of one length, one per column")
    return [list(row) for row in zip(*value.values(), strict=True)]


def rows_from_csv(text: str) -> list[Any]:
    """The rows of a CSV body; a first line that is not all numbers is the header."""
    lines = [row for row in csv.reader(io.StringIO(text)) if row]
    if lines and not all(_is_number(cell) for cell in lines[0]):
        header, lines = lines[0], lines[1:]
        for i, row in enumerate(lines):
            if len(row) != len(header):
                raise BadInputError(f"CSV line {i + 2} does not have {len(header)} values")
    return lines


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def matrix(rows: list[Any], width: int | None) -> npt.NDArray[Any]:
    """``rows`` as a 2-D array of numbers, ``width`` columns wide when the model says so."""
    if not rows:
        raise BadInputError("no rows to predict")
    try:
        array = np.asarray(rows)
        if array.dtype.kind not in "biuf":
            array = array.astype(np.float64)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"the rows must be lists of numbers of one length: {exc}") from None
    if array.ndim != 2:
        raise BadInputError(
            f"expected a list of rows (2 dimensions); received {array.ndim} dimensions"
        )
    if width is not None and array.shape[1] != width:
        raise BadInputError(f"the model expects {width} values per row; received {array.shape[1]}")
    return array


def encode(predictions: Any) -> bytes:
    """The response body ``{"predictions": [...]}``."""
    values = predictions.tolist() if isinstance(predictions, np.ndarray) else list(predictions)
    return ENCODER.encode({"predictions": values}).encode()

"""The client side of ``flops predict``: read inputs, ask the inference service, get predictions.

Inputs (``--input FILE`` or ``-`` for stdin):

    .json / stdin   a list of rows ``[[...], ...]``, one row ``[...]``, JSON Lines (a row per
                    line), or a full request body (``{"inputs": ...}``, ``{"dataframe_split":
                    ...}`` ...) sent as it is
    .npy            an array: 1-D is one row, 2-D rows, more dimensions are flattened per row
                    (``(n, 28, 28)`` images become ``n`` rows of 784)
    .npz            the array ``image`` (the format of the node's data partitions), or the
                    file's only array
    .csv            sent as ``text/csv`` (rows of numbers, an optional header line)

Arrays are read with ``allow_pickle=False``. Every failure is a ``PredictError`` that names
the problem: the file, a service that does not answer, or the service's own 400 reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import numpy as np
import numpy.typing as npt

from flops_env.scoring import CSV, FORMATS, JSON
from services.trmodel.errors import (
    InputFileError,
    PredictError,
    PredictionRejectedError,
    ServiceUnavailableError,
)


@dataclass(frozen=True)
class Payload:
    """A request body for ``POST /invocations``."""

    body: bytes
    content_type: str


def _rows_body(rows: list[Any]) -> Payload:
    return Payload(json.dumps({"inputs": rows}).encode(), JSON)


def payload_from_json(text: str, name: str) -> Payload:
    """Rows, one row, JSON Lines, or a full request body, as a JSON request."""
    try:
        doc = json.loads(text)
    except ValueError:
        return _rows_body([_line(line, i, name) for i, line in _lines(text)])
    if isinstance(doc, dict):
        if not any(key in doc for key in FORMATS):
            raise InputFileError(f"{name}: a JSON object must hold one of {', '.join(FORMATS)}")
        return Payload(text.encode(), JSON)
    if not isinstance(doc, list) or not doc:
        raise InputFileError(f"{name}: expected a non-empty list of rows")
    return _rows_body(doc if isinstance(doc[0], list | dict) else [doc])


def _lines(text: str) -> list[tuple[int, str]]:
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _line(line: str, number: int, name: str) -> Any:  # noqa: ANN401 - one JSON row
    try:
        return json.loads(line)
    except ValueError as exc:
        raise InputFileError(f"{name} line {number} is not JSON: {exc}") from None


def payload_from_array(array: npt.NDArray[Any], name: str) -> Payload:
    """An array as rows: 1-D is one row, more than 2-D is flattened per row."""
    if array.dtype.kind not in "biuf":
        raise InputFileError(f"{name}: the array holds {array.dtype}, not numbers")
    if array.ndim == 0 or array.size == 0:
        raise InputFileError(f"{name}: the array is empty or a single value")
    rows = array.reshape(1, -1) if array.ndim == 1 else array.reshape(array.shape[0], -1)
    return _rows_body(rows.tolist())


def _load_array(data: bytes, path: Path) -> npt.NDArray[Any]:
    import io  # noqa: PLC0415 - only for array files

    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise InputFileError(f"{path}: not a numpy file without pickles: {exc}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.keys())
        if "image" in keys or len(keys) == 1:
            array: npt.NDArray[Any] = loaded["image" if "image" in keys else keys[0]]
            return array
    raise InputFileError(f"{path}: holds {', '.join(keys) or 'no arrays'}; expected 'image'")


def read_inputs(source: str, stdin: BinaryIO | None = None) -> Payload:
    """The request body for the inputs in ``source`` (a path, or ``-`` for ``stdin``)."""
    if source == "-":
        if stdin is None:
            raise InputFileError("no standard input to read the inputs from")
        text = stdin.read().decode("utf-8", errors="replace")
        if text.lstrip()[:1] in ("[", "{"):
            return payload_from_json(text, "stdin")
        return Payload(text.encode(), CSV)
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return payload_from_array(_load_array(data, path), str(path))
    if suffix == ".csv":
        return Payload(data, CSV)
    try:
        return payload_from_json(data.decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not UTF-8 text (use .npy, .npz, .csv or JSON)") from None


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


async def predict(
    url: str,
    payload: Payload,
    *,
    timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Any]:
    """The predictions of the inference service at ``url`` for ``payload``."""
    target = url.rstrip("/") + "/invocations"
    headers = {"content-type": payload.content_type}
    try:
        async with httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False) as c:
            response = await c.post(target, content=payload.body, headers=headers)
    except httpx.TimeoutException:
        raise ServiceUnavailableError(
            f"the inference service at {url} did not answer within {timeout:g} s"
        ) from None
    except httpx.TransportError as exc:
        raise ServiceUnavailableError(f"no inference service answers at {url}: {exc}") from None
    if response.status_code != 200:
        status = response.status_code
        raise PredictionRejectedError(
            f"the inference service refused the input ({status}): {_reason(response)}", status
        )
    try:
        predictions = response.json()["predictions"]
    except (ValueError, KeyError, TypeError):
        raise PredictError(f"the inference service at {url} answered without predictions") from None
    if not isinstance(predictions, list):
        raise PredictError(
            f"the inference service at {url} answered predictions that are not a list"
        )
    return predictions

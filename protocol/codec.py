"""Decode and validate inbound payloads in exactly one place.

Any bytes may arrive on our topics: too large, not UTF-8, not JSON, nested too deep, an
unknown version or the wrong schema. Each becomes a ``MessageError`` with a stable code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import FlopsError

MAX_PAYLOAD = 256 * 1024
MAX_DEPTH = 32
M = TypeVar("M", bound=BaseModel)
_TOO_DEEP = object()


class MessageError(FlopsError, ValueError):
    """An inbound payload cannot be accepted; ``code`` is stable, the text says why."""

    def __init__(self, code: str, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or []


def _deeper_than(value: object, limit: int) -> bool:
    """Whether parsed JSON nests more than ``limit`` containers deep."""
    if isinstance(value, dict):
        children: Iterable[object] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if limit == 0:
        return True
    return any(
        _deeper_than(child, limit - 1) for child in children if isinstance(child, dict | list)
    )


def decode(model: type[M], payload: bytes) -> M:
    """Validate ``payload`` as ``model`` or raise ``MessageError``."""
    if len(payload) > MAX_PAYLOAD:
        raise MessageError("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError("bad_encoding", f"payload is not UTF-8: {exc.reason}") from exc
    # The C parser is safe on deep input (it raises RecursionError); the depth of what it
    # parsed is checked after, and only when there are enough brackets to matter.
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MessageError("bad_json", f"payload is not JSON: {exc}") from exc
    except RecursionError:
        data = _TOO_DEEP
    too_deep = f"JSON nested deeper than {MAX_DEPTH} levels"
    if data is _TOO_DEEP:
        raise MessageError("too_deep", too_deep)
    if payload.count(b"{") + payload.count(b"[") > MAX_DEPTH and _deeper_than(data, MAX_DEPTH):
        raise MessageError("too_deep", too_deep)
    if not isinstance(data, dict):
        raise MessageError("bad_schema", "payload must be a JSON object")
    if data.get("v", 1) != 1:
        raise MessageError("bad_version", f"unsupported message version {data.get('v')!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise MessageError("bad_schema", f"not a valid {model.__name__}", details) from exc


def encode(message: BaseModel) -> bytes:
    """Serialise a message for the wire."""
    return message.model_dump_json(exclude_none=True).encode()


def peek_reply_to(payload: bytes) -> tuple[str, str] | None:
    """Best effort ``(request_id, reply_to)`` of an invalid request, to answer its sender."""
    try:
        data = json.loads(payload[:MAX_PAYLOAD])
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    rid, to = data.get("request_id"), data.get("reply_to")
    if isinstance(rid, str) and isinstance(to, str) and 0 < len(rid) <= 64:
        return rid, to
    return None

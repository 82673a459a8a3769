"""Training payloads on the wire: frames with a validated header, cut into chunks.

A task or result is one frame (``flops_env.frames``: JSON header + ``.npy`` arrays). MQTT
brokers cap a packet (ours at 1 MiB), so a frame travels as chunks of at most
``chunk_bytes``, each one MQTT message:

    CHUNK = "FLC1" | transfer id (16 bytes) | index (uint32) | count (uint32) | data

A ``Reassembler`` joins the chunks of a transfer (in any order) and refuses transfers over
``max_model_bytes`` from their first chunk on. Presence messages are plain JSON.
"""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from flops_env import frames
from services.training.errors import ModelTooLargeError, WireError

CHUNK_MAGIC = b"FLC1"
CHUNK = struct.Struct(">4s16sII")
M = TypeVar("M", bound=BaseModel)
Arrays = list[np.ndarray[Any, Any]]


def encode_frame(header: BaseModel, arrays: Sequence[np.ndarray[Any, Any]], limit: int) -> bytes:
    """A frame of ``header`` and ``arrays``; ``ModelTooLargeError`` over ``limit``."""
    size = frames.nbytes(list(arrays))
    if size > limit:
        raise ModelTooLargeError(str(frames.too_large(size, limit, "the parameters take")))
    try:
        return frames.encode_bytes(header.model_dump(mode="json"), arrays, limit)
    except frames.FrameTooLargeError as exc:
        raise ModelTooLargeError(str(exc)) from exc
    except frames.FrameError as exc:
        raise WireError(str(exc)) from exc


def decode_frame(model: type[M], payload: bytes, limit: int) -> tuple[M, Arrays]:
    """The validated header and the arrays of a frame, or ``WireError``."""
    try:
        frame = frames.decode(payload, limit)
        return model.model_validate(frame.header), frame.arrays
    except frames.FrameError as exc:
        raise WireError(f"bad {model.__name__} frame: {exc}") from exc
    except ValidationError as exc:
        raise WireError(f"bad {model.__name__}: {exc.errors()[0]['msg']}") from exc


def decode_json(model: type[M], payload: bytes) -> M:
    """A JSON message, or ``WireError``."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise WireError(f"bad {model.__name__}: {exc.errors()[0]['msg']}") from exc


def chunks(payload: bytes, size: int) -> Iterator[bytes]:
    """The chunk messages of one payload (at least one)."""
    transfer = os.urandom(16)
    count = max(1, -(-len(payload) // size))
    view = memoryview(payload)
    for index in range(count):
        part = view[index * size : (index + 1) * size]
        yield CHUNK.pack(CHUNK_MAGIC, transfer, index, count) + part


class Reassembler:
    """Joins chunks into payloads; keeps at most ``open_transfers`` incomplete ones."""

    def __init__(self, limit: int, chunk_bytes: int, open_transfers: int = 256) -> None:
        self._limit = limit
        self._chunk = chunk_bytes
        self._open = open_transfers
        self._parts: OrderedDict[tuple[str, bytes], dict[int, bytes]] = OrderedDict()

    def add(self, topic: str, message: bytes) -> bytes | None:
        """The whole payload once its last chunk arrived, else ``None``; ``WireError`` if bad."""
        if len(message) < CHUNK.size or message[:4] != CHUNK_MAGIC:
            raise WireError(f"not a chunk on {topic}")
        _, transfer, index, count = CHUNK.unpack_from(message)
        if index >= count:
            raise WireError(f"chunk {index} of {count} on {topic}")
        if (count - 1) * self._chunk > self._limit + frames.SLACK:
            raise WireError(
                f"transfer of {count} chunks on {topic} is over max_model_bytes ({self._limit})"
            )
        data = message[CHUNK.size :]
        if count == 1:
            return data
        key = (topic, transfer)
        parts = self._parts.setdefault(key, {})
        parts[index] = data
        if len(parts) < count:
            self._parts.move_to_end(key)
            while len(self._parts) > self._open:
                self._parts.popitem(last=False)  # the oldest incomplete transfer is given up
            return None
        del self._parts[key]
        return b"".join(parts[i] for i in range(count))

"""Binary frames: a small JSON header and numpy arrays, never a pickle.

A frame is ``PREFIX | header | array 0 | array 1 | ...``:

- ``PREFIX``: the magic ``FLF1``, the header's length (uint32) and the length of all
  arrays together (uint64), big-endian;
- the header: one UTF-8 JSON object, at most ``MAX_HEADER`` bytes; the codec adds
  ``"arrays": <count>``;
- each array in the ``.npy`` format (``numpy.lib.format``), written and read with
  ``allow_pickle=False``, so an object array is refused at both ends.

The worker and its parent speak these frames over pipes, and the training topics carry them
over MQTT. Both ends refuse a frame larger than the limit they were given before reading it.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy

MAGIC = b"FLF1"
PREFIX = struct.Struct(">4sIQ")
MAX_HEADER = 1 << 20
MAX_NPY_HEADER = 10_000  # numpy's own default limit for an .npy header
SLACK = 2 << 20  # how much a frame may exceed its arrays' data: the JSON and .npy headers


class FrameError(ValueError):
    """Bytes that are not a valid frame, or arrays that cannot be put in one."""


class FrameTooLargeError(FrameError):
    """A frame over the size limit; refused before it is read or written."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: its JSON header and its arrays."""

    header: dict[str, Any]
    arrays: list[np.ndarray[Any, Any]] = field(default_factory=list)


def as_arrays(values: Sequence[object]) -> list[np.ndarray[Any, Any]]:
    """Numeric numpy arrays from what user code returned; refuse object arrays."""
    arrays = []
    for index, value in enumerate(values):
        array = np.ascontiguousarray(np.asarray(value))
        if array.dtype.hasobject:
            raise FrameError(
                f"parameter {index} has dtype object: parameters must be numeric arrays"
            )
        arrays.append(array)
    return arrays


def nbytes(arrays: Sequence[np.ndarray[Any, Any]]) -> int:
    """The size of the arrays' data, without headers."""
    return sum(int(a.nbytes) for a in arrays)


# Where an operator raises the limit: the stack's [stack.training] table (stack.settings).
SETTING = "training.max_model_bytes, FLOPS_TRAINING_MAX_MODEL_BYTES"


def too_large(size: int, limit: int, what: str = "the frame takes") -> FrameTooLargeError:
    """The error for ``size`` bytes over ``limit``, naming both in MB and the stack's setting."""
    return FrameTooLargeError(
        f"{what} {size / 1e6:.1f} MB, over the limit of {limit / 1e6:.1f} MB (setting {SETTING})"
    )


def encode(
    header: dict[str, Any], arrays: Sequence[np.ndarray[Any, Any]] = (), limit: int | None = None
) -> list[bytes]:
    """The pieces of one frame (write them in order); ``limit`` caps its whole size."""
    blobs = []
    for array in as_arrays(arrays):
        out = io.BytesIO()
        npy.write_array(out, array, allow_pickle=False)
        blobs.append(out.getvalue())
    head = json.dumps({**header, "arrays": len(blobs)}, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER:
        raise FrameError(f"frame header of {len(head)} bytes is over {MAX_HEADER}")
    body = sum(len(b) for b in blobs)
    if limit is not None and PREFIX.size + len(head) + body > limit:
        raise too_large(PREFIX.size + len(head) + body, limit)
    return [PREFIX.pack(MAGIC, len(head), body), head, *blobs]


def encode_bytes(
    header: dict[str, Any], arrays: Sequence[np.ndarray[Any, Any]] = (), limit: int | None = None
) -> bytes:
    """One frame as one ``bytes`` object."""
    return b"".join(encode(header, arrays, limit))


def parse_prefix(prefix: bytes, limit: int) -> tuple[int, int]:
    """The header and body lengths of a frame, checked against ``limit`` before reading on."""
    if len(prefix) != PREFIX.size:
        raise FrameError(f"frame prefix of {len(prefix)} bytes, expected {PREFIX.size}")
    magic, head, body = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise FrameError(f"not a FLOps frame (magic {magic!r})")
    if head > MAX_HEADER:
        raise FrameError(f"frame header of {head} bytes is over {MAX_HEADER}")
    if PREFIX.size + head + body > limit:
        raise too_large(PREFIX.size + head + body, limit)
    return head, body


def decode_parts(head: bytes, body: bytes | memoryview) -> Frame:
    """A frame from its header bytes and its body (the arrays)."""
    try:
        header = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FrameError(f"frame header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise FrameError("frame header must be a JSON object")
    count = header.pop("arrays", 0)
    if not isinstance(count, int) or count < 0:
        raise FrameError(f"frame header has a bad array count {count!r}")
    stream = io.BytesIO(body)
    arrays = []
    for index in range(count):
        try:
            arrays.append(
                npy.read_array(stream, allow_pickle=False, max_header_size=MAX_NPY_HEADER)
            )
        except (ValueError, OSError, EOFError) as exc:
            raise FrameError(f"array {index} of the frame is not a valid .npy: {exc}") from exc
    if stream.tell() != len(body):
        raise FrameError(f"{len(body) - stream.tell()} bytes after the last array of the frame")
    return Frame(header, arrays)


def decode(data: bytes | memoryview, limit: int) -> Frame:
    """A frame from one buffer holding exactly one frame."""
    view = memoryview(data)
    head, body = parse_prefix(bytes(view[: PREFIX.size]), limit)
    if len(view) != PREFIX.size + head + body:
        raise FrameError(f"frame of {len(view)} bytes, its prefix says {PREFIX.size + head + body}")
    return decode_parts(bytes(view[PREFIX.size : PREFIX.size + head]), view[PREFIX.size + head :])


def write_frame(
    stream: BinaryIO,
    header: dict[str, Any],
    arrays: Sequence[np.ndarray[Any, Any]] = (),
    limit: int | None = None,
) -> None:
    """Write one frame to a binary stream and flush it."""
    for piece in encode(header, arrays, limit):
        stream.write(piece)
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise FrameError(f"stream ended {left} bytes before the end of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, limit: int) -> Frame | None:
    """Read one frame from a binary stream; ``None`` at a clean end of the stream."""
    first = stream.read(PREFIX.size)
    if not first:
        return None
    prefix = first + _read_exactly(stream, PREFIX.size - len(first))
    head, body = parse_prefix(prefix, limit)
    return decode_parts(_read_exactly(stream, head), _read_exactly(stream, body))

"""The frame codec: round trips, and refusals of bad or oversized frames."""

from __future__ import annotations

import io

import numpy as np
import pytest

from flops_env import frames

pytestmark = pytest.mark.timeout(10)
LIMIT = 1 << 20


def test_header_and_arrays_round_trip() -> None:
    arrays = [np.arange(12, dtype=np.float64).reshape(3, 4), np.array([1, 2], dtype=np.int64)]
    frame = frames.decode(frames.encode_bytes({"op": "fit", "n": 1}, arrays), LIMIT)
    assert frame.header == {"op": "fit", "n": 1}
    assert [a.dtype for a in frame.arrays] == [np.float64, np.int64]
    for got, sent in zip(frame.arrays, arrays, strict=True):
        np.testing.assert_array_equal(got, sent)


def test_decoded_arrays_are_writable() -> None:
    frame = frames.decode(frames.encode_bytes({}, [np.zeros(3)]), LIMIT)
    frame.arrays[0][0] = 1.0


def test_streams_carry_frames_one_after_another() -> None:
    stream = io.BytesIO()
    frames.write_frame(stream, {"a": 1}, [np.ones(2)])
    frames.write_frame(stream, {"b": 2})
    stream.seek(0)
    first, second = frames.read_frame(stream, LIMIT), frames.read_frame(stream, LIMIT)
    assert first is not None and first.header == {"a": 1}
    assert second is not None and second.header == {"b": 2}
    assert frames.read_frame(stream, LIMIT) is None


def test_object_arrays_are_refused_when_sent() -> None:
    with pytest.raises(frames.FrameError, match="dtype object"):
        frames.encode_bytes({}, [np.array([{"x": 1}], dtype=object)])


def test_a_pickled_array_is_refused_when_received() -> None:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.array([None, 1], dtype=object), allow_pickle=True)
    blob = out.getvalue()
    head = b'{"arrays":1}'
    data = frames.PREFIX.pack(frames.MAGIC, len(head), len(blob)) + head + blob
    with pytest.raises(frames.FrameError, match=r"not a valid \.npy"):
        frames.decode(data, LIMIT)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"XXXX" + bytes(12), "not a FLOps frame"),
        (frames.PREFIX.pack(frames.MAGIC, 2, 0) + b"[]", "JSON object"),
        (frames.PREFIX.pack(frames.MAGIC, 1, 0) + b"{", "not JSON"),
        (frames.PREFIX.pack(frames.MAGIC, 2, 5) + b"{}", "prefix says"),
        (frames.PREFIX.pack(frames.MAGIC, 2, 3) + b"{}abc", "bytes after the last array"),
        (frames.PREFIX.pack(frames.MAGIC, 12, 3) + b'{"arrays":1}abc', "not a valid .npy"),
    ],
)
def test_bad_frames_are_refused_with_the_reason(data: bytes, problem: str) -> None:
    with pytest.raises(frames.FrameError, match=problem):
        frames.decode(data, LIMIT)


def test_an_oversized_frame_is_refused_from_its_prefix() -> None:
    prefix = frames.PREFIX.pack(frames.MAGIC, 2, 10 * LIMIT)
    with pytest.raises(frames.FrameTooLargeError, match=r"over the limit of 1\.0 MB"):
        frames.parse_prefix(prefix, LIMIT)


def test_encoding_over_the_limit_is_refused() -> None:
    with pytest.raises(frames.FrameTooLargeError, match="max_model_bytes"):
        frames.encode_bytes({}, [np.zeros(LIMIT)], limit=LIMIT)

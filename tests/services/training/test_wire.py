"""Training payloads: validated frames, chunks and their reassembly, topics, checkpoints."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from protocol.topics import TopicError
from services.training import checkpoint, wire
from services.training.errors import ModelTooLargeError, TrainingError, WireError
from services.training.messages import Result, RoundData, Task
from services.training.topics import Channel, Group, TrainTopic

pytestmark = pytest.mark.timeout(10)
LIMIT = 1 << 20


def test_a_task_frame_round_trips_with_its_parameters() -> None:
    task = Task(task_id="ab" * 8, op="fit", round=2, learners=["l0", "l1"])
    payload = wire.encode_frame(task, [np.ones((2, 3))], LIMIT)
    decoded, arrays = wire.decode_frame(Task, payload, LIMIT + 4096)
    assert decoded == task and arrays[0].shape == (2, 3)


def test_a_frame_with_a_bad_header_is_refused() -> None:
    task = Task(task_id="ab" * 8, op="fit", round=2, learners=[])
    payload = wire.encode_frame(task, [], LIMIT)
    with pytest.raises(WireError, match="bad Result"):
        wire.decode_frame(Result, payload, LIMIT)


def test_parameters_over_the_limit_are_refused_before_sending() -> None:
    task = Task(task_id="ab" * 8, op="fit", round=1, learners=[])
    with pytest.raises(ModelTooLargeError, match=r"2\.1 MB, over the limit of 1\.0 MB"):
        wire.encode_frame(task, [np.zeros(LIMIT // 4, dtype=np.float64)], LIMIT)


def test_chunks_reassemble_in_any_order() -> None:
    payload = random.randbytes(10_000)
    parts = list(wire.chunks(payload, 1024))
    assert len(parts) == 10
    random.shuffle(parts)
    joined = wire.Reassembler(LIMIT, 1024)
    results = [joined.add("t", part) for part in parts]
    assert results[:-1] == [None] * 9 and results[-1] == payload


def test_a_transfer_over_the_limit_is_refused_from_its_first_chunk() -> None:
    first = next(wire.chunks(bytes(3 << 20), 1024))  # the limit allows 2 MiB of headers
    with pytest.raises(WireError, match="over max_model_bytes"):
        wire.Reassembler(4096, 1024).add("t", first)


def test_incomplete_transfers_are_given_up_oldest_first() -> None:
    joined = wire.Reassembler(LIMIT, 1024, open_transfers=2)
    transfers = [list(wire.chunks(bytes(2048), 1024)) for _ in range(3)]
    for parts in transfers:
        assert joined.add("t", parts[0]) is None
    assert joined.add("t", transfers[0][1]) is None  # its first chunk was dropped
    assert joined.add("t", transfers[2][1]) == bytes(2048)


@pytest.mark.parametrize(
    "text",
    [
        "flops/v1/users/u/projects/p/train/root/tasks",
        "flops/v1/users/u/projects/p/train/c0/results",
        "flops/v1/users/u/projects/p/train/c1/learners",
        "flops/v1/users/u/projects/p/train/root/aggregator",
    ],
)
def test_training_topics_round_trip(text: str) -> None:
    assert str(TrainTopic.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "flops/v1/users/u/projects/p/train/root/other",
        "flops/v1/users/u/projects/p/train/+/tasks",
        "flops/v2/users/u/projects/p/train/root/tasks",
        "flops/v1/users/u/projects/p/events",
    ],
)
def test_other_topics_are_not_training_topics(text: str) -> None:
    with pytest.raises(TopicError):
        TrainTopic.parse(text)


def test_a_group_names_its_four_channels() -> None:
    group = Group("u", "p", "c0")
    assert group.tasks.endswith("/train/c0/tasks") and group.learners.endswith("/learners")
    assert TrainTopic.parse(group.aggregator).channel is Channel.AGGREGATOR


def test_a_checkpoint_round_trips(tmp_path: Path) -> None:
    data = RoundData(round=1, rounds=3, loss=0.5, accuracy=0.8, examples=9, learners=2, seconds=1)
    saved = checkpoint.Checkpoint(
        state=checkpoint.State(total=3, completed=1, history=[data]),
        global_parameters=[np.ones(3)],
        best_parameters=[np.zeros(3)],
    )
    checkpoint.save(tmp_path, saved)
    loaded = checkpoint.load(tmp_path, LIMIT)
    assert loaded is not None and loaded.state.history == [data]
    np.testing.assert_array_equal(loaded.global_parameters[0], np.ones(3))
    np.testing.assert_array_equal(loaded.best_parameters[0], np.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.NAME]  # no temporary left


def test_no_checkpoint_and_a_damaged_one(tmp_path: Path) -> None:
    assert checkpoint.load(tmp_path, LIMIT) is None
    (tmp_path / checkpoint.NAME).write_bytes(b"FLF1garbage")
    with pytest.raises(TrainingError, match="is damaged"):
        checkpoint.load(tmp_path, LIMIT)

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodedata.assign import assign, assign_tags
from nodedata.errors import DataError
from nodedata.store import ColumnInfo, PartitionInfo, TagManifest, write_tag


def manifest(tag: str, rows: list[int]) -> TagManifest:
    return TagManifest(
        tag=tag,
        dataset="test",
        source="test",
        created_at=0.0,
        columns={"label": ColumnInfo(dtype="int64", shape=[])},
        partitions=[
            PartitionInfo(file=f"part-{i:03d}.npz", rows=r, sha256="x") for i, r in enumerate(rows)
        ],
    )


tags = st.lists(
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=5), min_size=0, max_size=3
)


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None)
@given(tags, st.integers(min_value=1, max_value=12))
def test_learner_shares_are_disjoint_and_cover_every_row(
    sizes: list[list[int]], learners: int
) -> None:
    manifests = [manifest(f"t{i}", rows) for i, rows in enumerate(sizes)]
    seen: dict[tuple[str, int], int] = {}
    for learner in range(learners):
        for s in assign(manifests, learner, learners):
            assert 0 <= s.start < s.stop
            for row in range(s.start, s.stop):
                key = (s.file, row)
                assert key not in seen, f"row {key} given to learners {seen[key]} and {learner}"
                seen[key] = learner
    every = {
        (f"data/{m.tag}/{p.file}", r)
        for m in manifests
        for p in m.partitions
        for r in range(p.rows)
    }
    assert set(seen) == every


@pytest.mark.timeout(10)
def test_partitions_go_round_robin_when_there_are_enough() -> None:
    m = manifest("mnist", [5, 5, 5])
    assert [s.file for s in assign([m], 0, 2)] == [
        "data/mnist/part-000.npz",
        "data/mnist/part-002.npz",
    ]
    assert [s.file for s in assign([m], 1, 2)] == ["data/mnist/part-001.npz"]


@pytest.mark.timeout(10)
def test_fewer_partitions_than_learners_split_rows() -> None:
    m = manifest("mnist", [10])
    got = [assign([m], i, 3) for i in range(3)]
    assert [(s[0].start, s[0].stop) for s in got] == [(0, 3), (3, 6), (6, 10)]


@pytest.mark.timeout(10)
def test_a_bad_learner_index_is_refused() -> None:
    with pytest.raises(DataError, match="not one of 2 learners"):
        assign([], 2, 2)


@pytest.mark.timeout(10)
def test_assign_tags_reads_the_node_and_skips_absent_tags(tmp_path: Path) -> None:
    write_tag(tmp_path, "a", {"label": np.arange(6)}, 2, dataset="d", source="s")
    slices = assign_tags(tmp_path, ["a", "missing", "a"], 0, 1)
    assert [(s.tag, s.rows) for s in slices] == [("a", 3), ("a", 3)]
    assert assign_tags(tmp_path, ["missing"], 0, 1) == []

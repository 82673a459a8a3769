from pathlib import Path

import numpy as np
import pytest

from flops_utils._contract import DataContractError, PartitionSlice, data_environment
from flops_utils.flops_learner_files_wrapper import load_ml_data
from flops_utils.ml_repo_building_blocks import NoDataError, load_dataset
from nodedata.assign import assign_tags
from nodedata.store import write_tag

ESCAPE = '[{"tag": "a", "file": "../../etc/passwd", "start": 0, "stop": 1}]'


@pytest.fixture
def node(tmp_path: Path) -> Path:
    write_tag(
        tmp_path,
        "mnist",
        {"image": np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2), "label": np.arange(10)},
        3,
        dataset="t",
        source="t",
    )
    return tmp_path


@pytest.mark.timeout(10)
def test_each_learner_loads_only_its_share(node: Path) -> None:
    labels = []
    for learner in range(2):
        env = data_environment(node, ["mnist"], assign_tags(node, ["mnist"], learner, 2))
        ds = load_dataset(env)
        assert ds["image"].shape[1:] == (2, 2)
        labels.append(ds["label"].tolist())
    assert sorted(labels[0] + labels[1]) == list(range(10))
    assert not set(labels[0]) & set(labels[1])


@pytest.mark.timeout(10)
def test_no_rows_gives_the_originals_message(node: Path) -> None:
    env = data_environment(node, ["cifar"], [])
    with pytest.raises(
        NoDataError, match=r"No matching data found for provided data tags '\['cifar'\]'"
    ):
        load_dataset(env)


@pytest.mark.timeout(10)
def test_the_older_load_ml_data_serves_the_same(
    node: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in data_environment(node, ["mnist"], assign_tags(node, ["mnist"], 0, 1)).items():
        monkeypatch.setenv(key, value)
    assert len(load_ml_data()) == 10


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "FLOPS_DATA_DIR is not set"),
        ({"FLOPS_DATA_DIR": "/x"}, "FLOPS_DATA_TAGS is not set"),
        (
            {"FLOPS_DATA_DIR": "/x", "FLOPS_DATA_TAGS": "[", "FLOPS_DATA_SLICES": "[]"},
            "not valid JSON",
        ),
        (
            {"FLOPS_DATA_DIR": "/x", "FLOPS_DATA_TAGS": "[]", "FLOPS_DATA_SLICES": '[{"tag": 1}]'},
            "not a slice",
        ),
        (
            {
                "FLOPS_DATA_DIR": "/x",
                "FLOPS_DATA_TAGS": "[]",
                "FLOPS_DATA_SLICES": ESCAPE,
            },
            "not inside the data dir",
        ),
    ],
)
def test_bad_variables_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(DataContractError, match=message):
        load_dataset(env)


@pytest.mark.timeout(10)
def test_a_vanished_partition_is_named(node: Path) -> None:
    env = data_environment(
        node, ["mnist"], [PartitionSlice("mnist", "data/mnist/part-009.npz", 0, 1)]
    )
    with pytest.raises(NoDataError, match=r"part-009\.npz of tag 'mnist' is gone"):
        load_dataset(env)

import json
from pathlib import Path

import numpy as np
import pytest

from core.progress import Recorder
from nodedata import fashion
from nodedata.datasets import load
from nodedata.errors import DataError
from nodedata.mock import bundled_names, load_mock_sla, prepare_mock_data
from nodedata.store import data_root, list_tags, write_tag


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("name", "partitions"), [("mnist_simple.json", 1), ("mnist_multi", 3)])
async def test_bundled_mock_slas_store_their_partitions(
    tmp_path: Path, name: str, partitions: int
) -> None:
    sla, _ = load_mock_sla(name)
    progress = Recorder()
    manifest = await prepare_mock_data(sla, tmp_path, progress)
    assert len(manifest.partitions) == partitions
    assert manifest.rows == 1797
    assert "not MNIST" in progress.texts()[0] and "scikit-learn" in progress.texts()[0]
    rows = 0
    for part in manifest.partitions:
        with np.load(data_root(tmp_path) / "mnist" / part.file, allow_pickle=False) as npz:
            assert npz["image"].shape == (part.rows, 28, 28) and npz["image"].dtype == np.uint8
            assert npz["label"].dtype == np.int64 and set(npz["label"]) <= set(range(10))
            rows += part.rows
    assert rows == 1797
    assert [m.tag for m in list_tags(tmp_path)] == ["mnist"]


@pytest.mark.timeout(30)
async def test_a_second_run_replaces_the_tag_whole(tmp_path: Path) -> None:
    await prepare_mock_data(load_mock_sla("mnist_multi")[0], tmp_path)
    await prepare_mock_data(load_mock_sla("mnist_simple")[0], tmp_path)
    assert sorted(p.name for p in (data_root(tmp_path) / "mnist").iterdir()) == [
        "manifest.json",
        "part-000.npz",
    ]
    assert [p.name for p in data_root(tmp_path).iterdir()] == ["mnist"]


BAD = {
    "unknown key": ({"customerID": "Admin", "extra": 1, "mock_data_configuration": {}}, "extra"),
    "unknown dataset": (
        {
            "customerID": "Admin",
            "mock_data_configuration": {
                "dataset_name": "cifar",
                "number_of_partitions": 1,
                "data_tag": "x",
            },
        },
        "dataset_name",
    ),
    "zero partitions": (
        {
            "customerID": "Admin",
            "mock_data_configuration": {
                "dataset_name": "mnist",
                "number_of_partitions": 0,
                "data_tag": "x",
            },
        },
        "number_of_partitions",
    ),
    "string partitions": (
        {
            "customerID": "Admin",
            "mock_data_configuration": {
                "dataset_name": "mnist",
                "number_of_partitions": "3",
                "data_tag": "x",
            },
        },
        "number_of_partitions",
    ),
    "tag with a slash": (
        {
            "customerID": "Admin",
            "mock_data_configuration": {
                "dataset_name": "mnist",
                "number_of_partitions": 1,
                "data_tag": "../x",
            },
        },
        "data_tag",
    ),
    "missing configuration": ({"customerID": "Admin"}, "mock_data_configuration"),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_mock_slas_are_refused_naming_the_field_before_anything_is_written(
    tmp_path: Path, case: str
) -> None:
    raw, field = BAD[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=field) as err:
        load_mock_sla(str(path))
    assert str(path) in str(err.value)
    assert not data_root(tmp_path).exists()


@pytest.mark.timeout(10)
def test_unknown_names_list_the_bundled_ones(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="not readable JSON"):
        load_mock_sla(str(tmp_path / "broken.json"))
    with pytest.raises(DataError, match=r"mnist_multi\.json"):
        load_mock_sla("nope")
    assert bundled_names() == ["mnist_multi.json", "mnist_simple.json"]


@pytest.mark.timeout(10)
def test_too_many_partitions_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="between 1 and 4"):
        write_tag(tmp_path, "t", {"label": np.arange(4)}, 5, dataset="d", source="s")
    assert not data_root(tmp_path).exists()


@pytest.mark.timeout(10)
def test_fashion_mnist_without_the_debian_package_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion.load_fashion(tmp_path)


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    not fashion.DEFAULT_DIR.is_dir(), reason="dataset-fashion-mnist is not installed"
)
def test_fashion_mnist_from_the_debian_package() -> None:
    (images, labels), source = load("fashion_mnist")
    assert images.shape == (70000, 28, 28) and images.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert "dataset-fashion-mnist" in source

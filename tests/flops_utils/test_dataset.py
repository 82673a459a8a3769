from typing import Any

import numpy as np
import pytest

from flops_utils.dataset import Dataset, DatasetDict
from flops_utils.ml_repo_templates import DataManagerTemplate, ModelManagerTemplate


def digits(n: int = 10) -> Dataset:
    return Dataset(
        {"image": np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2), "label": np.arange(n)}
    )


@pytest.mark.timeout(10)
def test_the_original_example_repos_calls_work() -> None:
    ds = digits()
    ds.set_format("numpy")
    x, y = ds["image"].reshape((len(ds), -1)), ds["label"]
    assert x.shape == (10, 4) and y.tolist() == list(range(10))
    assert ds.num_rows == 10 and ds.column_names == ["image", "label"]


@pytest.mark.timeout(10)
def test_formats_python_and_rows() -> None:
    ds = digits(3).with_format(None)
    assert ds["label"] == [0, 1, 2]
    assert ds[1]["label"] == 1 and ds[-1]["label"] == 2
    assert ds[0:2]["label"] == [0, 1]
    assert [row["label"] for row in ds] == [0, 1, 2]
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(KeyError, match="img"):
        ds["img"]
    with pytest.raises(ValueError, match="arrow"):
        ds.set_format("arrow")


@pytest.mark.timeout(10)
def test_train_test_split_like_datasets() -> None:
    split = digits(10).train_test_split(test_size=0.2, seed=42)
    assert isinstance(split, DatasetDict)
    assert (len(split["train"]), len(split["test"])) == (8, 2)
    together = sorted(split["train"]["label"].tolist() + split["test"]["label"].tolist())
    assert together == list(range(10))
    again = digits(10).train_test_split(test_size=0.2, seed=42)
    assert again["test"]["label"].tolist() == split["test"]["label"].tolist()
    assert len(digits(10).train_test_split()["test"]) == 3
    assert len(digits(10).train_test_split(test_size=4, shuffle=False)["test"]) == 4
    with pytest.raises(ValueError, match="between"):
        digits(10).train_test_split(test_size=1.5)


@pytest.mark.timeout(10)
def test_with_transform_applies_to_batches_as_a_dataloader_reads_them() -> None:
    def double(batch: dict[str, Any]) -> dict[str, Any]:
        batch["image"] = [img * 2 for img in batch["image"]]
        return batch

    split = digits(4).train_test_split(test_size=1, shuffle=False).with_transform(double)
    row = split["test"][0]
    assert (
        row["label"] == 3
        and row["image"].tolist() == (np.arange(12, 16).reshape(2, 2) * 2).tolist()
    )


@pytest.mark.timeout(10)
def test_unequal_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Dataset({"a": np.zeros(2), "b": np.zeros(3)})


@pytest.mark.timeout(10)
def test_templates_are_abstract() -> None:
    with pytest.raises(TypeError):
        ModelManagerTemplate()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        DataManagerTemplate()  # type: ignore[abstract]

from pathlib import Path

import numpy as np
import pytest

from nodedata.errors import DataError
from nodedata.importer import import_file
from nodedata.store import data_root, read_manifest


@pytest.mark.timeout(10)
def test_an_npz_keeps_its_arrays_as_columns(tmp_path: Path) -> None:
    src = tmp_path / "mine.npz"
    np.savez(src, image=np.zeros((10, 784), np.uint8), label=np.arange(10))
    manifest = import_file(tmp_path / "node", src, "mine", partitions=2)
    assert [p.rows for p in manifest.partitions] == [5, 5]
    assert manifest.columns["image"].shape == [784]
    assert read_manifest(tmp_path / "node", "mine") == manifest


@pytest.mark.timeout(10)
def test_a_csv_becomes_image_and_label(tmp_path: Path) -> None:
    src = tmp_path / "mine.csv"
    src.write_text("a,label,b\n1,0,2\n3,1,255\n")
    manifest = import_file(tmp_path, src, "csv")
    with np.load(data_root(tmp_path) / "csv" / "part-000.npz", allow_pickle=False) as npz:
        assert npz["image"].tolist() == [[1, 2], [3, 255]] and npz["image"].dtype == np.uint8
        assert npz["label"].tolist() == [0, 1]
    assert manifest.dataset == "import:mine.csv"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.csv", "a,b\n1,2\n", "'label' column"),
        ("x.csv", "a,label\n1,x\n", "must be a number"),
        ("x.csv", "a,label\n1,0.5\n", "labels must be integers"),
        ("x.npz", "not a zip", r"not a readable \.npz"),
        ("x.txt", "", r"only \.npz, \.csv"),
    ],
)
def test_bad_files_are_refused_and_nothing_is_written(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    src = tmp_path / name
    src.write_text(content)
    with pytest.raises(DataError, match=message):
        import_file(tmp_path / "node", src, "t")
    assert not (tmp_path / "node").exists()


@pytest.mark.timeout(10)
def test_pickled_object_arrays_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "evil.npz"
    np.savez(src, label=np.array([object()], dtype=object))
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        import_file(tmp_path, src, "t")


@pytest.mark.timeout(10)
def test_bad_tags_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "x.npz"
    np.savez(src, label=np.arange(3))
    with pytest.raises(DataError, match="data tag"):
        import_file(tmp_path, src, "../etc")

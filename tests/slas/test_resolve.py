from pathlib import Path

import pytest

from core.errors import SLAError
from slas import bundled_dir, resolve_sla


def test_bare_name_with_or_without_json_finds_the_bundled_sla(tmp_path: Path) -> None:
    expected = bundled_dir() / "mnist_sklearn_small.json"
    assert resolve_sla("mnist_sklearn_small.json", tmp_path) == expected
    assert resolve_sla("mnist_sklearn_small", tmp_path) == expected


def test_the_user_folder_comes_first(tmp_path: Path) -> None:
    mine = tmp_path / "mnist_sklearn_small.json"
    mine.write_text("{}")
    assert resolve_sla("mnist_sklearn_small", tmp_path) == mine


def test_a_path_works(tmp_path: Path) -> None:
    sla = tmp_path / "sub" / "custom.json"
    sla.parent.mkdir()
    sla.write_text("{}")
    assert resolve_sla(str(sla), Path("/nonexistent")) == sla


def test_unknown_names_list_what_exists(tmp_path: Path) -> None:
    with pytest.raises(SLAError, match=r"no SLA named 'nope\.json'.*mnist_sklearn_small\.json"):
        resolve_sla("nope", tmp_path)
    with pytest.raises(SLAError, match="does not exist"):
        resolve_sla("./missing/x.json", tmp_path)


def test_a_folder_is_not_an_sla_file(tmp_path: Path) -> None:
    with pytest.raises(SLAError, match="is a folder, not an SLA file"):
        resolve_sla(str(tmp_path), tmp_path)

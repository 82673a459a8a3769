"""The images each project uses, as its services record them."""

from pathlib import Path

import pytest

from images.uses import forget_use, read_uses, record_use

PROJECT = "0123456789abcdef01234567"


def test_a_projects_record_grows_as_its_services_record_images(tmp_path: Path) -> None:
    record_use(tmp_path, PROJECT, "alice", ["r/alice/aggregator:c", "r/alice/learner:c"])
    record_use(tmp_path, PROJECT, "alice", ["r/alice/trained_model:run", "r/alice/learner:c"])
    (use,) = read_uses(tmp_path)
    assert use.names == ("r/alice/aggregator:c", "r/alice/learner:c", "r/alice/trained_model:run")
    forget_use(tmp_path, PROJECT)
    assert read_uses(tmp_path) == []


def test_a_project_id_that_cannot_name_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot name a file"):
        record_use(tmp_path, "../x", "alice", ["a"])

"""``flops model --export`` copies from the path the manager answered, or says why it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.model_ops import _local_artifact
from core.errors import ConfigError
from services.trmodel.artifact import Artifact
from services.trmodel.view import view_of
from tests.services.trmodel.conftest import artifact

__all__ = ["artifact"]
pytestmark = pytest.mark.timeout(30)


def test_an_artifact_this_cli_cannot_read_is_said_so(artifact: Artifact, tmp_path: Path) -> None:
    view = view_of(artifact)
    assert _local_artifact(view).manifest == artifact.manifest
    elsewhere = view.model_copy(update={"path": str(tmp_path / "on-the-stacks-host")})
    with pytest.raises(ConfigError, match="which this CLI cannot read here"):
        _local_artifact(elsewhere)
    other_run = view.manifest.model_copy(update={"run_id": "f" * 16})
    with pytest.raises(ConfigError, match="not the stack's run ffffffffffffffff"):
        _local_artifact(view.model_copy(update={"manifest": other_run}))

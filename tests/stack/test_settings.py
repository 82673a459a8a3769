from __future__ import annotations

import pytest

from stack.settings import StackSettings


def test_the_stack_runtime_is_local_unless_set() -> None:
    assert StackSettings.model_validate({}).runtime == "local"
    assert StackSettings.model_validate({"runtime": "process"}).runtime == "process"
    with pytest.raises(ValueError, match="runtime"):
        StackSettings.model_validate({"runtime": "docker"})

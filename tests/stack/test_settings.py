from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings
from services.training.settings import TrainingSettings
from stack.app import stage_settings
from stack.settings import StackSettings


def test_the_stack_runtime_is_local_unless_set() -> None:
    assert StackSettings.model_validate({}).runtime == "local"
    assert StackSettings.model_validate({"runtime": "process"}).runtime == "process"
    with pytest.raises(ValueError, match="runtime"):
        StackSettings.model_validate({"runtime": "docker"})


def stack_settings(tmp_path: Path, **env: str) -> StackSettings:
    (tmp_path / "none.toml").write_text("")
    return load_settings(StackSettings, {}, {"FLOPS_CONFIG": str(tmp_path / "none.toml"), **env})


@pytest.mark.parametrize(
    ("env", "roots"),
    [
        ({}, None),  # the single-user default: users are not told apart anyway
        ({"FLOPS_SECURE": "true"}, ()),
        ({"FLOPS_BROKER": "external", "FLOPS_CA_FILE": "/tls/ca.crt"}, ()),
        ({"FLOPS_SECURE": "true", "FLOPS_LOCAL_REPO_ROOTS": "/srv/a:/srv/b"}, ("/srv/a", "/srv/b")),
        ({"FLOPS_LOCAL_REPO_ROOTS": "/"}, ("/",)),
    ],
)
def test_file_repositories_are_off_by_default_where_users_are_told_apart(
    tmp_path: Path, env: dict[str, str], roots: tuple[str, ...] | None
) -> None:
    got = stack_settings(tmp_path, **env).repo_roots()
    assert got == (None if roots is None else tuple(Path(r) for r in roots))


def test_the_quotas_have_defaults_and_zero_turns_them_off(tmp_path: Path) -> None:
    default = stack_settings(tmp_path)
    assert (default.max_live_projects, default.max_starts_per_minute) == (50, 20)
    off = stack_settings(tmp_path, FLOPS_MAX_LIVE_PROJECTS="0", FLOPS_MAX_STARTS_PER_MINUTE="0")
    assert (off.max_live_projects, off.max_starts_per_minute) == (0, 0)
    with pytest.raises(ConfigError, match="max_live_projects"):
        stack_settings(tmp_path, FLOPS_MAX_LIVE_PROJECTS="-1")


def test_the_training_settings_reach_the_stages_from_the_environment_and_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.toml").write_text("[stack.training]\nround_timeout = 60.0\n")
    env = {"FLOPS_CONFIG": str(tmp_path / "c.toml"), "FLOPS_TRAINING_MAX_MODEL_BYTES": "4096"}
    settings = load_settings(StackSettings, {}, env, "stack")
    assert settings.training.round_timeout == 60.0
    assert settings.training.max_model_bytes == 4096
    assert settings.training.join_timeout == TrainingSettings().join_timeout
    assert stage_settings(settings).training == settings.training
    with pytest.raises(ConfigError, match=r"training: .*learner_timeout must be more than"):
        load_settings(StackSettings, {}, {**env, "FLOPS_TRAINING_LEARNER_TIMEOUT": "0.5"})

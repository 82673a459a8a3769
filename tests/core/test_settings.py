from pathlib import Path

import pytest
from pydantic import BaseModel

from core.errors import ConfigError
from core.settings import load_settings


class Example(BaseModel):
    host: str = "localhost"
    port: int = 1883
    timeout: float = 10.0


def test_precedence_is_defaults_file_env_flags(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('host = "filehost"\nport = 1\n[cli]\nport = 2\ntimeout = 3.0\n')
    env = {"FLOPS_CONFIG": str(conf), "FLOPS_TIMEOUT": "4"}
    s = load_settings(Example, {"port": None}, env, section="cli")
    assert (s.host, s.port, s.timeout) == ("filehost", 2, 4.0)
    s = load_settings(Example, {"port": 5}, env, section="cli")
    assert s.port == 5


def test_a_bad_value_names_the_setting(tmp_path: Path) -> None:
    env = {"FLOPS_CONFIG": str(tmp_path / "none.toml")}
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(Example, {}, env)
    with pytest.raises(ConfigError, match="port"):
        load_settings(Example, {}, {"FLOPS_PORT": "many", "XDG_CONFIG_HOME": str(tmp_path)})


def test_a_broken_config_file_is_reported(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("host = \n")
    with pytest.raises(ConfigError, match=str(conf)):
        load_settings(Example, {}, {"FLOPS_CONFIG": str(conf)})


class WithPaths(BaseModel):
    ca_file: Path | None = None
    data_dir: Path = Path("/default")
    name: str = ""


def test_relative_paths_in_the_config_file_are_relative_to_its_folder(tmp_path: Path) -> None:
    conf = tmp_path / "deploy" / "config.toml"
    conf.parent.mkdir()
    conf.write_text('name = "ca.crt"\n[cli]\nca_file = "ca.crt"\ndata_dir = "/abs"\n')
    env = {"FLOPS_CONFIG": str(conf)}
    s = load_settings(WithPaths, {}, env, section="cli")
    assert s.ca_file == conf.parent / "ca.crt"
    assert s.data_dir == Path("/abs")
    assert s.name == "ca.crt"  # only paths are anchored
    # The environment and flags keep their meaning: relative to the working directory.
    s = load_settings(WithPaths, {}, {**env, "FLOPS_CA_FILE": "here.crt"}, section="cli")
    assert s.ca_file == Path("here.crt")


def test_a_misspelt_key_in_the_models_own_section_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("tiemout = 1\n[cli]\ntiemout = 3.0\n[stack]\nanything = 1\n")
    env = {"FLOPS_CONFIG": str(conf)}
    with pytest.raises(ConfigError, match=r"unknown setting tiemout in \[cli\]"):
        load_settings(Example, {}, env, section="cli")
    # Top-level keys and other sections belong to other processes too: not errors here.
    assert load_settings(Example, {}, env, section="service").timeout == 10.0


def test_a_section_only_model_ignores_top_level_keys(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('host = "cli-host"\n[oak]\nport = 7\n')
    s = load_settings(Example, {}, {"FLOPS_CONFIG": str(conf)}, section="oak", top_level=False)
    assert (s.host, s.port) == ("localhost", 7)


class Limits(BaseModel):
    model_config = {"extra": "forbid"}
    timeout: float = 1.0
    size: int = 10


class WithGroup(BaseModel):
    timeout: float = 5.0
    limits: Limits = Limits()


def test_a_group_of_settings_is_a_table_of_the_section_and_prefixed_variables(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("timeout = 7.0\n[stack.limits]\ntimeout = 2.0\nsize = 20\n")
    env = {"FLOPS_CONFIG": str(conf), "FLOPS_LIMITS_SIZE": "30"}
    s = load_settings(WithGroup, {}, env, section="stack")
    assert (s.timeout, s.limits.timeout, s.limits.size) == (7.0, 2.0, 30)
    conf.write_text("[stack.limits]\nsizes = 20\n")
    with pytest.raises(ConfigError, match=r"limits\.sizes"):
        load_settings(WithGroup, {}, {"FLOPS_CONFIG": str(conf)}, section="stack")
    with pytest.raises(ConfigError, match=r"limits\.size"):
        load_settings(WithGroup, {}, {**env, "FLOPS_LIMITS_SIZE": "many"}, section="stack")

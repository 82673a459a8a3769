"""The settings of a service process: FLOPS_SERVICE_* and the broker, errors naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from services.settings import load_service_settings
from services.spec import ServiceSpec, service_environment

SPEC = ServiceSpec(
    "6761bf5d59461659a24b1199", "builder8266202cd6db", "builder", "Admin",
    "6761bf5d59461659a24b1197", "6761bf5d59461659a24b1197",
    {"repo_url": "file:///r/u/repo", "registry": "localhost:5073"},
)  # fmt: skip


def env_of(spec: ServiceSpec, tmp_path: Path, **extra: str) -> dict[str, str]:
    config = tmp_path / "none.toml"
    if not config.exists():
        config.write_text("")
    return {**service_environment(spec), "FLOPS_CONFIG": str(tmp_path / "none.toml"), **extra}


def test_the_variables_a_runtime_sets_give_back_the_spec(tmp_path: Path) -> None:
    env = env_of(SPEC, tmp_path, FLOPS_BROKER_HOST="mqtt.example", FLOPS_BROKER_PORT="8883")
    env |= {"FLOPS_CA_FILE": "/tls/ca.pem", "FLOPS_DATA_DIR": str(tmp_path)}
    settings = load_service_settings(environ=env)
    me = settings.service
    assert (me.id, me.name, me.kind, me.user, me.project_id, me.config) == (
        SPEC.id, SPEC.name, SPEC.kind, SPEC.user, SPEC.project_id, SPEC.config,
    )  # fmt: skip
    assert (settings.broker_host, settings.broker_port) == ("mqtt.example", 8883)
    assert settings.ca_file == Path("/tls/ca.pem")
    assert settings.data_dir == tmp_path
    assert not settings.exit_with_parent


def test_the_service_section_of_the_config_file_applies(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("[service]\nheartbeat_interval = 3\nbroker_port = 1999\n")
    settings = load_service_settings(environ=env_of(SPEC, tmp_path))
    assert (settings.heartbeat_interval, settings.broker_port) == (3.0, 1999)


@pytest.mark.parametrize("variable", ["ID", "NAME", "KIND", "USER", "PROJECT_ID"])
def test_a_missing_service_variable_is_named(tmp_path: Path, variable: str) -> None:
    env = env_of(SPEC, tmp_path)
    del env[f"FLOPS_SERVICE_{variable}"]
    with pytest.raises(ConfigError, match=f"FLOPS_SERVICE_{variable} is not set"):
        load_service_settings(environ=env)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CONFIG", "{not json", "FLOPS_SERVICE_CONFIG is not valid JSON"),
        ("CONFIG", "[1, 2]", "FLOPS_SERVICE_CONFIG: Input should be a valid dictionary"),
        ("KIND", "trainer", "FLOPS_SERVICE_KIND: Value error, no service kind 'trainer'"),
        ("PROJECT_ID", "a/b", "FLOPS_SERVICE_PROJECT_ID: String should match"),
        ("PROJECT_ID", "p1", "FLOPS_SERVICE_PROJECT_ID: String should match"),
        ("USER", "#", "FLOPS_SERVICE_USER: String should match"),
    ],
)
def test_a_malformed_service_variable_is_named(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = env_of(SPEC, tmp_path, **{f"FLOPS_SERVICE_{variable}": value})
    with pytest.raises(ConfigError, match=message):
        load_service_settings(environ=env)


def test_a_missing_config_is_an_empty_one(tmp_path: Path) -> None:
    env = env_of(SPEC, tmp_path)
    del env["FLOPS_SERVICE_CONFIG"]
    assert load_service_settings(environ=env).service.config == {}


def test_a_bad_broker_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="broker_port"):
        load_service_settings(environ=env_of(SPEC, tmp_path, FLOPS_BROKER_PORT="http"))

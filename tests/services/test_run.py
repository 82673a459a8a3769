"""`flops service run` as an orchestrator starts it: settings errors name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.spec import ServiceSpec, service_environment
from tests.conftest import BrokerProcess, cli_env, run_cli

pytestmark = pytest.mark.timeout(60)
P1, P2 = "6761bf5d59461659a24b1197", "6761bf5d59461659a24b1198"
OBSERVER = ServiceSpec("s1", "observ1", "observer", "Admin", P1, "a1")


def test_a_missing_variable_exits_2_naming_it(tmp_path: Path) -> None:
    env = cli_env(tmp_path, **service_environment(OBSERVER))
    del env["FLOPS_SERVICE_KIND"]
    done = run_cli(["service", "run"], env)
    assert done.returncode == 2
    assert "FLOPS_SERVICE_KIND is not set" in done.stderr


def test_a_builder_with_a_bad_config_exits_2_naming_it(tmp_path: Path) -> None:
    spec = ServiceSpec("s2", "builder1", "builder", "Admin", P1, P1, {"repo": "x"})
    done = run_cli(["service", "run"], cli_env(tmp_path, **service_environment(spec)))
    assert done.returncode == 2
    assert "FLOPS_SERVICE_CONFIG is not a builder configuration" in done.stderr


def test_no_broker_exits_1(tmp_path: Path) -> None:
    from broker.server import free_port  # noqa: PLC0415

    env = cli_env(tmp_path, **service_environment(OBSERVER), FLOPS_BROKER_PORT=str(free_port()))
    env["FLOPS_DATA_DIR"] = str(tmp_path / "observer")
    done = run_cli(["service", "run"], env, timeout=40)
    assert done.returncode == 1
    assert "no MQTT broker reachable" in done.stderr


def test_a_builder_that_fails_exits_1_after_reporting(
    tmp_path: Path, mosquitto: BrokerProcess
) -> None:
    config = {"repo_url": f"file://{tmp_path}/no/repo", "registry": "r:5000"}
    config["data_dir"] = str(tmp_path)
    spec = ServiceSpec("s3", "builder3", "builder", "Admin", P2, P2, config)
    env = cli_env(tmp_path, **service_environment(spec), FLOPS_BROKER_PORT=str(mosquitto.port))
    done = run_cli(["service", "run"], env)
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "flops-service-ready"
    assert "builder3 failed: cannot reach" in done.stderr

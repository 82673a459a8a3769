"""compose.yaml and deploy/mosquitto/mosquitto.conf, checked without a Docker engine.

The compose file is validated against the Compose Specification JSON schema vendored in
this folder (README.md says from where), then against the project's own rules, which the
schema cannot express. The mosquitto config is run by the real mosquitto binary.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiomqtt
import jsonschema
import pytest

from broker.server import free_port
from cli.settings import CliSettings
from core.settings import load_settings
from stack.discovery import CARD
from stack.settings import StackSettings
from tests.deploy.conftest import (
    COMPOSE_FILE,
    MOSQUITTO_CONF,
    DeployBroker,
    local_mosquitto_conf,
    start_mosquitto,
)

HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE / "compose-spec.json"
# From check-jsonschema 0.39.0 (PyPI), check_jsonschema/builtin_schemas/vendor/compose-spec.json.
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
MOSQUITTO_DEFAULT_MAX_QUEUED = 1000


def schema_errors(document: Any) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator.iter_errors(document)
    ]


def conf_options(text: str) -> dict[str, list[str]]:
    """Active (uncommented) mosquitto options: name -> values in file order."""
    options: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            options.setdefault(name, []).append(value.strip())
    return options


def commented_options(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^#\s*([a-z_]+)\s+\S", text, flags=re.MULTILINE)}


def volume_target(services: dict[str, Any], service: str, target: str) -> str:
    """The source mounted at ``target`` in ``service`` (short syntax SOURCE:TARGET[:MODE])."""
    for entry in services[service].get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("target") == target:
                return str(entry["source"])
        else:
            parts = str(entry).split(":")
            if len(parts) >= 2 and parts[1] == target:
                return parts[0]
    raise AssertionError(f"{service} mounts nothing at {target}")


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host_ip, published, target) of each published port; host_ip '' means all."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append(
                (
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    str(entry["target"]),
                )
            )
            continue
        text = str(entry).split("/")[0]
        if text.startswith("["):  # [::1]:1883:1883
            host, _, rest = text[1:].partition("]:")
            published, _, target = rest.partition(":")
        else:
            parts = text.split(":")
            host = parts[0] if len(parts) == 3 else ""
            published = parts[-2] if len(parts) >= 2 else ""
            target = parts[-1]
        out.append((host, published, target))
    return out


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    """The healthcheck as argv, with compose's ``$$`` escape undone."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        argv = ["sh", "-c", test]
    elif test[0] == "CMD":
        argv = list(test[1:])
    elif test[0] == "CMD-SHELL":
        argv = ["sh", "-c", test[1]]
    else:
        raise AssertionError(f"unexpected healthcheck test {test!r}")
    return [str(a).replace("$$", "$") for a in argv]


# ------------------------------------------------------------------ the schema


def test_vendored_compose_schema_is_the_recorded_copy() -> None:
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256, "compose-spec.json changed: record its source in README.md"
    assert SCHEMA_SHA256 in (HERE / "README.md").read_text()


def test_compose_file_is_valid_against_compose_specification_schema(
    compose: dict[str, Any],
) -> None:
    assert schema_errors(compose) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "manager", "depends_on", "mosquitto", "condition"), "when_ready"),
        (("services", "mongodb", "healthcheck", "intervall"), "10s"),
        (("services", "mosquitto", "ports"), "127.0.0.1:1883:1883"),
        (("services", "manager", "restart_policy"), "always"),
    ],
    ids=["bad-condition", "misspelt-key", "ports-not-a-list", "unknown-service-key"],
)
def test_schema_rejects_broken_variants_of_the_compose_file(
    compose: dict[str, Any], path: tuple[str, ...], value: str
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert schema_errors(broken), f"schema accepted {'.'.join(path)} = {value!r}"


def test_compose_file_has_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


# ------------------------------------------------------------------ project rules


def test_every_image_is_pinned_to_a_tag_other_than_latest(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        last = str(image).rsplit("/", 1)[-1]
        assert "@sha256:" in last or ":" in last, f"{name}: {image} has no tag"
        tag = last.split("@", 1)[0].partition(":")[2]
        assert tag and tag != "latest", f"{name}: {image} is not pinned"


def test_expected_images_and_versions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"mosquitto", "mongodb", "manager"}
    assert re.fullmatch(r"eclipse-mosquitto:2\.0\.\d+", services["mosquitto"]["image"])
    assert re.fullmatch(r"mongo:7\.0(\.\d+)?", services["mongodb"]["image"])
    assert services["manager"]["build"] == "."


def test_broker_is_published_on_localhost_only(compose: dict[str, Any]) -> None:
    assert published_ports(compose["services"]["mosquitto"]) == [("127.0.0.1", "1883", "1883")]
    for name, service in compose["services"].items():
        for host, published, _ in published_ports(service):
            assert host in {"127.0.0.1", "::1"}, f"{name} publishes {published} on {host or '*'}"


def test_mosquitto_and_mongodb_state_live_on_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    named = set(compose.get("volumes") or {})
    for service, target in (
        ("mongodb", "/data/db"),
        ("mosquitto", "/mosquitto/data"),
        ("manager", "/data"),
    ):
        source = volume_target(services, service, target)
        assert source in named, f"{service}:{target} is not a named volume ({source})"


def test_mosquitto_mounts_the_deploy_config(compose: dict[str, Any]) -> None:
    source = volume_target(compose["services"], "mosquitto", "/mosquitto/config/mosquitto.conf")
    assert (COMPOSE_FILE.parent / source).resolve() == MOSQUITTO_CONF


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert healthcheck_argv(service), f"{name} has no healthcheck"
    assert healthcheck_argv(compose["services"]["mongodb"])[:1] == ["mongosh"]
    assert "db.runCommand({ping:1})" in healthcheck_argv(compose["services"]["mongodb"])
    assert healthcheck_argv(compose["services"]["mosquitto"])[0] == "mosquitto_sub"


def test_manager_waits_for_healthy_broker_and_database(compose: dict[str, Any]) -> None:
    depends = compose["services"]["manager"]["depends_on"]
    assert depends == {
        "mosquitto": {"condition": "service_healthy"},
        "mongodb": {"condition": "service_healthy"},
    }


def test_manager_environment_is_read_by_stack_settings(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    env = {k: str(v) for k, v in compose["services"]["manager"]["environment"].items()}
    assert env["FLOPS_STORE"] == "mongodb"
    assert env["FLOPS_MONGO_URL"] == "mongodb://mongodb:27017/flops"
    config = tmp_path / "config.toml"
    config.write_text("")
    settings = load_settings(
        StackSettings,
        {"broker": "external"},
        environ={**env, "FLOPS_CONFIG": str(config)},
        section="stack",
    )
    assert (settings.broker_host, settings.broker_port) == ("mosquitto", 1883)
    assert settings.data_dir == Path("/data")
    assert volume_target(compose["services"], "manager", str(settings.data_dir))


def test_manager_healthcheck_looks_for_the_stack_card(compose: dict[str, Any]) -> None:
    manager = compose["services"]["manager"]
    data_dir = manager["environment"]["FLOPS_DATA_DIR"]
    assert healthcheck_argv(manager) == ["test", "-f", f"{data_dir}/{CARD}"]


def test_header_comment_shows_a_cli_command_that_cli_settings_accept(tmp_path: Path) -> None:
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    lines = [line.lstrip("# ").strip() for line in header.splitlines()]
    command = next(line for line in lines if line.endswith("flops projects"))
    words = shlex.split(command)
    env = dict(word.split("=", 1) for word in words if "=" in word)
    assert words[len(env) :] == ["flops", "projects"]
    assert env == {"FLOPS_BROKER_HOST": "127.0.0.1", "FLOPS_BROKER_PORT": "1883"}
    config = tmp_path / "config.toml"
    config.write_text("")
    settings = load_settings(CliSettings, environ={**env, "FLOPS_CONFIG": str(config)})
    assert (settings.broker_host, settings.broker_port) == ("127.0.0.1", 1883)


# ------------------------------------------------------------------ mosquitto.conf


def test_mosquitto_conf_has_the_stack_tuning() -> None:
    options = conf_options(MOSQUITTO_CONF.read_text())
    assert options["listener"] == ["1883"]
    assert options["set_tcp_nodelay"] == ["true"]
    assert int(options["max_queued_messages"][0]) >= 1_000_000
    assert options["max_inflight_messages"] == ["1000"]
    assert options["persistence"] == ["true"]
    assert options["persistence_location"] == ["/mosquitto/data/"]
    assert options["autosave_interval"] == ["5"]
    assert options["allow_anonymous"] == ["true"]


def test_mosquitto_conf_shows_where_secure_mode_settings_go() -> None:
    text = MOSQUITTO_CONF.read_text()
    active = conf_options(text)
    for option in ("password_file", "acl_file", "certfile", "keyfile", "cafile"):
        assert option in commented_options(text), f"no commented {option} line"
        assert option not in active, f"{option} is active in the development config"


def test_real_mosquitto_rejects_a_config_with_an_unknown_option(tmp_path: Path) -> None:
    """The control for the tests below: a bad config makes mosquitto exit, not listen."""
    text = local_mosquitto_conf(MOSQUITTO_CONF.read_text(), free_port(), tmp_path)
    with pytest.raises(RuntimeError, match="mosquitto exited"):
        start_mosquitto(text + "no_such_option 1\n", tmp_path).stop()


def test_real_mosquitto_accepts_the_deploy_config_and_tcp_connections(
    deploy_broker: DeployBroker,
) -> None:
    with socket.create_connection(("127.0.0.1", deploy_broker.port), timeout=2):
        pass
    assert deploy_broker.proc.poll() is None
    assert "Error" not in deploy_broker.log.read_text(errors="replace")


async def test_deploy_broker_answers_what_the_healthcheck_asks(
    deploy_broker: DeployBroker,
) -> None:
    async with aiomqtt.Client("127.0.0.1", deploy_broker.port) as client:
        await client.subscribe("$SYS/broker/version")
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    assert message.payload.startswith(b"mosquitto version 2.")


def test_mosquitto_healthcheck_command_succeeds_against_deploy_broker(
    compose: dict[str, Any], deploy_broker: DeployBroker
) -> None:
    argv = healthcheck_argv(compose["services"]["mosquitto"])
    binary = shutil.which(argv[0])
    if binary is None:
        pytest.skip("mosquitto_sub is not installed (apt-get install mosquitto-clients)")
    argv = [binary, *argv[1:]]
    argv[argv.index("-p") + 1] = str(deploy_broker.port)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mosquitto version 2.")


async def deliver_to_offline_session(port: int, count: int) -> list[int]:
    """Publish ``count`` QoS 1 messages while a persistent subscriber is away; what it gets."""
    topic = "flops/v1/users/deploytest/projects/p/events"
    subscriber: dict[str, Any] = {"hostname": "127.0.0.1", "port": port, "identifier": "dq"}
    async with aiomqtt.Client(**subscriber, clean_session=True):
        pass  # start from an empty session
    async with aiomqtt.Client(**subscriber, clean_session=False) as client:
        await client.subscribe(topic, qos=1)
    async with aiomqtt.Client("127.0.0.1", port) as publisher:
        for i in range(count):
            await publisher.publish(topic, str(i).encode(), qos=1)
    received: list[int] = []
    async with aiomqtt.Client(**subscriber, clean_session=False) as client:
        messages = aiter(client.messages)
        while len(received) < count:
            try:
                async with asyncio.timeout(2):
                    message = await anext(messages)
            except TimeoutError:
                break  # nothing more is queued
            assert isinstance(message.payload, bytes)
            received.append(int(message.payload))
    return received


async def test_deploy_broker_keeps_more_than_the_default_queue_for_an_offline_session(
    deploy_broker: DeployBroker,
) -> None:
    """max_queued_messages is raised for real: 1,500 QoS 1 messages wait for a session."""
    count = MOSQUITTO_DEFAULT_MAX_QUEUED + 500
    received = await deliver_to_offline_session(deploy_broker.port, count)
    assert received == list(range(count))


async def test_mosquitto_default_queue_limit_drops_messages_for_an_offline_session(
    tmp_path: Path,
) -> None:
    """The control for the test above: without the raised limit, messages are lost."""
    port = free_port()
    text = local_mosquitto_conf(MOSQUITTO_CONF.read_text(), port, tmp_path)
    text = re.sub(r"(?m)^max_queued_messages .*$", "", text)
    broker = start_mosquitto(text, tmp_path)
    try:
        received = await deliver_to_offline_session(port, MOSQUITTO_DEFAULT_MAX_QUEUED + 500)
    finally:
        broker.stop()
    assert len(received) == MOSQUITTO_DEFAULT_MAX_QUEUED


def test_deploy_broker_persists_its_state_in_the_persistence_location(
    tmp_path: Path,
) -> None:
    port = free_port()
    broker = start_mosquitto(
        local_mosquitto_conf(MOSQUITTO_CONF.read_text(), port, tmp_path), tmp_path
    )
    assert broker.stop() == 0
    assert (tmp_path / "mosquitto.db").is_file()

"""compose.yaml and deploy/mosquitto/mosquitto.conf, checked without a Docker engine.

The compose file is validated against the Compose Specification JSON schema vendored in
this folder (README.md says from where), then against the project's own rules, which the
schema cannot express. The mosquitto config is run by the real mosquitto binary.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from broker.certs import server_hosts
from broker.server import Secure, mosquitto_config
from broker.tlsfiles import TlsFiles
from cli.settings import CliSettings
from core.settings import load_settings
from stack.discovery import CARD
from stack.secure import acl_path, passwd_path
from stack.settings import StackSettings
from tests.conftest import ROOT, cli_env, run_cli
from tests.deploy.conftest import (
    COMPOSE_FILE,
    MOSQUITTO_CONF,
    PEOPLE_PORT,
    SECRETS,
    SERVICE_PORT,
    DeployBroker,
    start_deploy_broker,
    without_option,
)
from tests.deploy.test_image import stages
from tests.security.attacks import Door, offline_session

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
        (("services", "manager-1", "depends_on", "mosquitto", "condition"), "when_ready"),
        (("services", "mongodb", "healthcheck", "intervall"), "10s"),
        (("services", "mosquitto", "ports"), "127.0.0.1:8883:8883"),
        (("services", "manager-2", "restart_policy"), "always"),
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


MANAGERS = ("manager-1", "manager-2", "manager-3")


def test_expected_services_images_and_versions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"init", "mosquitto", "mongodb", *MANAGERS}
    assert re.fullmatch(r"eclipse-mosquitto:2\.0\.\d+", services["mosquitto"]["image"])
    assert re.fullmatch(r"mongo:7\.0(\.\d+)?", services["mongodb"]["image"])
    for name in ("init", *MANAGERS):
        assert services[name]["build"] == ".", name
        assert services[name]["image"] == services["init"]["image"], name


def test_broker_is_published_on_localhost_only(compose: dict[str, Any]) -> None:
    assert published_ports(compose["services"]["mosquitto"]) == [("127.0.0.1", "8883", "8883")]
    for name, service in compose["services"].items():
        for host, published, _ in published_ports(service):
            assert host in {"127.0.0.1", "::1"}, f"{name} publishes {published} on {host or '*'}"


def test_state_lives_on_named_volumes_one_per_manager(compose: dict[str, Any]) -> None:
    services = compose["services"]
    named = set(compose.get("volumes") or {})
    targets = [("mongodb", "/data/db"), ("mosquitto", "/mosquitto/data")]
    targets += [(manager, "/data") for manager in MANAGERS]
    sources = [volume_target(services, service, target) for service, target in targets]
    for (service, target), source in zip(targets, sources, strict=True):
        assert source in named, f"{service}:{target} is not a named volume ({source})"
    assert len(set(sources)) == len(sources), "a data volume is shared"


def test_the_secrets_volume_is_written_by_init_and_read_only_elsewhere(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    volume = volume_target(services, "init", SECRETS)
    assert volume in set(compose["volumes"])
    assert f"{volume}:{SECRETS}" in services["init"]["volumes"]
    for name in ("mosquitto", *MANAGERS):
        assert f"{volume}:{SECRETS}:ro" in services[name]["volumes"], name


def test_init_runs_once_and_everything_waits_for_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["init"]["restart"] == "no"
    assert services["init"]["command"][:3] == ["flops", "secure", "init"]
    assert services["mosquitto"]["depends_on"] == {
        "init": {"condition": "service_completed_successfully"}
    }
    for name in MANAGERS:
        assert services[name]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"},
            "mosquitto": {"condition": "service_healthy"},
            "mongodb": {"condition": "service_healthy"},
        }, name


def test_init_gives_the_files_to_the_users_that_read_them(compose: dict[str, Any]) -> None:
    """The broker's files to mosquitto's user; the services' key to the image's user."""
    services = compose["services"]
    command = services["init"]["command"]
    broker_owner = command[command.index("--broker-owner") + 1]
    service_owner = command[command.index("--service-owner") + 1]
    assert broker_owner == services["mosquitto"]["user"] == "1883:1883"
    image_user = next(v for c, _, v, _ in reversed(stages()[-1].instructions) if c == "USER")
    assert service_owner.split(":")[0] == image_user[0].split(":")[0]
    assert service_owner.split(":")[1] == broker_owner.split(":")[1]  # the healthcheck reads it


def test_mosquitto_mounts_the_deploy_config(compose: dict[str, Any]) -> None:
    source = volume_target(compose["services"], "mosquitto", "/mosquitto/config/mosquitto.conf")
    assert (COMPOSE_FILE.parent / source).resolve() == MOSQUITTO_CONF


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") == "no":
            continue
        assert healthcheck_argv(service), f"{name} has no healthcheck"
    assert compose["services"]["init"]["healthcheck"] == {"disable": True}
    assert healthcheck_argv(compose["services"]["mongodb"])[:1] == ["mongosh"]
    assert "db.runCommand({ping:1})" in healthcheck_argv(compose["services"]["mongodb"])
    mosquitto = healthcheck_argv(compose["services"]["mosquitto"])
    assert mosquitto[0] == "mosquitto_sub"
    assert {"--cafile", "--cert", "--key", "-E"} <= set(mosquitto)


def manager_settings(compose: dict[str, Any], name: str, tmp_path: Path) -> StackSettings:
    env = {k: str(v) for k, v in compose["services"][name]["environment"].items()}
    assert env["FLOPS_STORE"] == "mongodb"
    assert env["FLOPS_MONGO_URL"] == "mongodb://mongodb:27017/flops"
    config = tmp_path / "config.toml"
    config.write_text("")
    return load_settings(
        StackSettings,
        {"broker": "external"},
        environ={**env, "FLOPS_CONFIG": str(config)},
        section="stack",
    )


def test_managers_environment_is_read_by_stack_settings(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    tls = TlsFiles.under(Path(SECRETS) / "tls")
    identifiers = set()
    for name in MANAGERS:
        settings = manager_settings(compose, name, tmp_path)
        assert (settings.broker_host, settings.broker_port) == ("mosquitto", SERVICE_PORT)
        assert (settings.ca_file, settings.cert_file, settings.key_file) == (
            tls.ca,
            tls.service_cert,
            tls.service_key,
        )
        assert settings.cluster
        assert settings.store == "mongodb"
        assert settings.data_dir == Path("/data")
        assert volume_target(compose["services"], name, str(settings.data_dir))
        identifiers.add(settings.identifier)
    assert identifiers == set(MANAGERS)


def test_manager_healthcheck_looks_for_the_stack_card(compose: dict[str, Any]) -> None:
    for name in MANAGERS:
        manager = compose["services"][name]
        data_dir = manager["environment"]["FLOPS_DATA_DIR"]
        assert healthcheck_argv(manager) == ["test", "-f", f"{data_dir}/{CARD}"]


def run_init_command(compose: dict[str, Any], root: Path) -> tuple[Path, Path]:
    """compose's init command, run here with its two mounts made local dirs."""
    init = compose["services"]["init"]
    cli_mount = next(v for v in init["volumes"] if v.startswith("./"))
    container_dir = cli_mount.split(":")[1]
    secrets, cli = root / "secrets", root / "cli"
    args = [
        a.replace(SECRETS, str(secrets)).replace(container_dir, str(cli)) for a in init["command"]
    ]
    if os.geteuid() != 0:  # only root can give files away
        for option in ("--broker-owner", "--service-owner"):
            at = args.index(option)
            del args[at : at + 2]
    done = run_cli(args[1:], cli_env(root / "home"))
    assert done.returncode == 0, done.stderr
    return secrets, cli


def test_header_comment_shows_a_cli_command_whose_one_setting_is_written_by_init(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    lines = [line.lstrip("# ").strip() for line in header.splitlines()]
    command = next(line for line in lines if line.endswith("flops projects"))
    words = shlex.split(command)
    env = dict(word.split("=", 1) for word in words if "=" in word)
    assert words[len(env) :] == ["flops", "projects"]
    assert list(env) == ["FLOPS_CONFIG"]
    # init writes that file into a bind mount of the folder the header names; git ignores it
    cli_mount = next(v for v in compose["services"]["init"]["volumes"] if v.startswith("./"))
    assert Path(env["FLOPS_CONFIG"]).parent == Path(cli_mount.split(":")[0])
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert f"{Path(env['FLOPS_CONFIG']).parent}/" in ignored
    secrets, cli = run_init_command(compose, tmp_path)
    settings = load_settings(
        CliSettings,
        environ={"FLOPS_CONFIG": str(cli / Path(env["FLOPS_CONFIG"]).name)},
        section="cli",
    )
    host, published, _ = published_ports(compose["services"]["mosquitto"])[0]
    assert (settings.broker_host, str(settings.broker_port)) == (host, published)
    assert settings.ca_file is not None
    assert settings.ca_file.read_bytes() == (secrets / "tls" / "ca.crt").read_bytes()


def test_init_makes_a_broker_certificate_for_the_name_the_managers_use(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    secrets, _ = run_init_command(compose, tmp_path)
    hosts = server_hosts(secrets / "tls" / "server.crt")
    assert compose["services"]["manager-1"]["environment"]["FLOPS_BROKER_HOST"] in hosts
    assert {"127.0.0.1", "localhost"} <= hosts
    assert healthcheck_argv(compose["services"]["mosquitto"])[2] in hosts  # -h localhost


# ------------------------------------------------------------------ mosquitto.conf


def listener_sections(text: str) -> tuple[dict[str, list[str]], list[dict[str, list[str]]]]:
    """The options before the first listener, and each listener's options (its line without
    the bind address).
    """
    head: dict[str, list[str]] = {}
    listeners: list[dict[str, list[str]]] = []
    for name, value in conf_lines(text):
        if name == "listener":
            listeners.append({"listener": [value.split()[0]]})
        else:
            (listeners[-1] if listeners and name not in GLOBAL else head).setdefault(
                name, []
            ).append(value)
    return head, listeners


GLOBAL = {
    "per_listener_settings",
    "set_tcp_nodelay",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "persistent_client_expiration",
    "retain_available",
    "max_packet_size",
    "persistence",
    "persistence_location",
    "autosave_interval",
    "log_dest",
    "log_type",
    "connection_messages",
    "log_timestamp_format",
    "user",
}


def conf_lines(text: str) -> list[tuple[str, str]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            out.append((name, value.strip()))
    return out


def test_deploy_listeners_are_the_embedded_secure_modes(tmp_path: Path) -> None:
    """Same listeners, files and options as broker/server.py generates for `flops up
    --secure`, with the layout of stack/secure.py under the secrets mount.
    """
    folder = Path(SECRETS)
    secure = Secure(
        TlsFiles.under(folder / "tls"), passwd_path(folder), acl_path(folder), SERVICE_PORT
    )
    embedded = mosquitto_config(PEOPLE_PORT, tmp_path, secure=secure)
    ours, theirs = listener_sections(MOSQUITTO_CONF.read_text()), listener_sections(embedded)
    assert ours[1] == theirs[1]
    tuning = GLOBAL - {"persistence_location", "log_dest", "user"}
    assert {k: v for k, v in ours[0].items() if k in tuning} == {
        k: v for k, v in theirs[0].items() if k in tuning
    }


def test_mosquitto_conf_has_the_stack_tuning() -> None:
    options = conf_options(MOSQUITTO_CONF.read_text())
    assert options["listener"] == [str(PEOPLE_PORT), str(SERVICE_PORT)]
    assert options["set_tcp_nodelay"] == ["true"]
    # Queues high enough for a restarting service's backlog, and bounded (docs/security.md).
    assert int(options["max_queued_messages"][0]) >= 100_000
    assert 0 < int(options["max_queued_bytes"][0]) <= 64 * 1024 * 1024
    assert options["retain_available"] == ["false"]
    assert options["connection_messages"] == ["false"]
    assert options["max_inflight_messages"] == ["1000"]
    assert options["persistence"] == ["true"]
    assert options["persistence_location"] == ["/mosquitto/data/"]
    assert options["autosave_interval"] == ["5"]
    assert options["allow_anonymous"] == ["false", "false"]
    assert options["per_listener_settings"] == ["true"]


def test_real_mosquitto_rejects_a_config_with_an_unknown_option(tmp_path: Path) -> None:
    """The control for the tests below: a bad config makes mosquitto exit, not listen."""
    with pytest.raises(RuntimeError, match="mosquitto exited"):
        start_deploy_broker(tmp_path, MOSQUITTO_CONF.read_text() + "no_such_option 1\n").stop()


def test_real_mosquitto_runs_the_deploy_config_without_errors(
    deploy_broker: DeployBroker,
) -> None:
    for port in deploy_broker.ports.values():
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    assert deploy_broker.proc.poll() is None
    log = deploy_broker.log.read_text(errors="replace")
    assert "Error: " not in log
    assert "Warning: File" not in log  # mosquitto's complaints about file permissions


async def deliver_to_offline_session(broker: DeployBroker, count: int) -> list[int]:
    """Publish ``count`` QoS 1 messages while a persistent subscriber is away; what it gets.

    Both clients are services: the client certificate on the services' listener.
    """
    topic = "flops/v1/users/deploytest/projects/p/events"
    service = Door(broker.service_port, broker.tls(service=True))
    payloads = [str(i).encode() for i in range(count)]
    return [int(p) for p in await offline_session(service, service, topic, payloads, "dq")]


async def test_deploy_broker_keeps_more_than_the_default_queue_for_an_offline_session(
    deploy_broker: DeployBroker,
) -> None:
    """max_queued_messages is raised for real: 1,500 QoS 1 messages wait for a session."""
    count = MOSQUITTO_DEFAULT_MAX_QUEUED + 500
    received = await deliver_to_offline_session(deploy_broker, count)
    assert received == list(range(count))


async def test_mosquitto_default_queue_limit_drops_messages_for_an_offline_session(
    tmp_path: Path,
) -> None:
    """The control for the test above: without the raised limit, messages are lost."""
    text = without_option(MOSQUITTO_CONF.read_text(), "max_queued_messages")
    broker = start_deploy_broker(tmp_path, text)
    try:
        received = await deliver_to_offline_session(broker, MOSQUITTO_DEFAULT_MAX_QUEUED + 500)
    finally:
        broker.stop()
    assert len(received) == MOSQUITTO_DEFAULT_MAX_QUEUED


def test_deploy_broker_persists_its_state_in_the_persistence_location(
    tmp_path: Path,
) -> None:
    broker = start_deploy_broker(tmp_path)
    assert broker.stop() == 0
    assert (broker.state_dir / "mosquitto.db").is_file()

"""Fixtures of the deployment tests: the files under test, the secrets made by the real
`flops secure init`, and the deploy mosquitto.conf run by the real mosquitto binary of this
machine on free localhost ports.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from broker.server import free_port
from mqtt.tls import client_context
from tests.conftest import ROOT, cli_env, mosquitto_binary, run_cli

COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
SECRETS = "/secrets"  # where compose.yaml mounts the secrets volume
PEOPLE_PORT, SERVICE_PORT = 8883, 8884  # the listeners of the deploy config
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}


def load_compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), "compose.yaml is not a mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@dataclass
class Secrets:
    """What the real `flops secure init` wrote: the secrets volume and the CLI's folder."""

    folder: Path
    cli_dir: Path

    def init(self, *extra: str, cli_port: int = PEOPLE_PORT) -> subprocess.CompletedProcess[str]:
        args = ["secure", "init", "--dir", str(self.folder), "--broker-host", "mosquitto"]
        args += ["--cli-dir", str(self.cli_dir), "--cli-port", str(cli_port), *extra]
        return run_cli(args, cli_env(self.folder.parent / "home"))

    def user_env(self) -> dict[str, str]:
        """The environment of `flops user` pointed at this volume, as in compose's init."""
        return cli_env(self.folder.parent / "home", FLOPS_DATA_DIR=str(self.folder))

    def add_user(self, name: str, password: str) -> None:
        args = ["user", "add", name, "--password-stdin"]
        done = run_cli(args, self.user_env(), stdin=password)
        assert done.returncode == 0, done.stderr

    def path(self, in_container: str) -> str:
        """A path of the secrets volume as compose names it, here."""
        return in_container.replace(SECRETS, str(self.folder))


def local_mosquitto_conf(
    text: str, ports: Mapping[int, int], state_dir: Path, secrets: Path
) -> str:
    """The deploy config with only what must differ here replaced: each listener (a free
    localhost port instead of every interface), the persistence directory and the place
    of the secrets volume.
    """
    out: list[str] = []
    listeners = 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "listener":
            listeners += 1
            out.append(f"listener {ports[int(value)]} 127.0.0.1")
        elif key == "persistence_location":
            out.append(f"persistence_location {state_dir}/")
        elif key.startswith("#"):
            out.append(line)
        else:
            out.append(line.replace(f" {SECRETS}/", f" {secrets}/"))
    assert listeners == len(ports), (listeners, ports)
    if os.geteuid() == 0:
        # As root mosquitto drops to user 'mosquitto', who cannot read the temp dir.
        out.append(f"user {getpass.getuser()}")
    return "\n".join(out) + "\n"


@dataclass
class DeployBroker:
    """mosquitto running the deploy config; its output goes to ``log``."""

    ports: dict[int, int]  # deploy port -> the local one
    state_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]
    secrets: Secrets | None = None

    @property
    def people_port(self) -> int:
        return self.ports[PEOPLE_PORT]

    @property
    def service_port(self) -> int:
        return self.ports[SERVICE_PORT]

    def tls(self, *, service: bool = False) -> ssl.SSLContext:
        """Verify the broker against the CA; with ``service``, present the services' cert."""
        assert self.secrets is not None
        tls = self.secrets.folder / "tls"
        if service:
            return client_context(tls / "ca.crt", tls / "service.crt", tls / "service.key")
        return client_context(tls / "ca.crt")

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        return self.proc.returncode


def start_mosquitto(
    conf_text: str, state_dir: Path, ports: dict[int, int], timeout: float = 10.0
) -> DeployBroker:
    """Start mosquitto with ``conf_text`` (already made local) and wait until it listens.

    Raises ``RuntimeError`` with mosquitto's output when it exits instead of listening.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    conf.write_text(conf_text)
    log = state_dir / "mosquitto.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    broker = DeployBroker(ports, state_dir, log, proc)
    deadline = time.monotonic() + timeout
    waiting = set(ports.values())
    while waiting and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"mosquitto exited with {proc.returncode}: {log.read_text(errors='replace')}"
            )
        port = min(waiting)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.02)
        else:
            waiting.discard(port)
    if waiting:
        broker.stop()
        raise RuntimeError(f"mosquitto did not listen on {waiting}: {log.read_text()}")
    return broker


def make_secrets(root: Path, cli_port: int = PEOPLE_PORT) -> Secrets:
    secrets = Secrets(root / "secrets", root / "cli")
    done = secrets.init(cli_port=cli_port)
    assert done.returncode == 0, done.stderr
    return secrets


def start_deploy_broker(root: Path, text: str | None = None) -> DeployBroker:
    """Secrets from the real `flops secure init`, then mosquitto on the deploy config."""
    ports = {PEOPLE_PORT: free_port(), SERVICE_PORT: free_port()}
    secrets = make_secrets(root, ports[PEOPLE_PORT])
    conf = local_mosquitto_conf(
        MOSQUITTO_CONF.read_text() if text is None else text,
        ports,
        root / "mosquitto",
        secrets.folder,
    )
    broker = start_mosquitto(conf, root / "mosquitto", ports)
    broker.secrets = secrets
    return broker


def without_option(text: str, option: str) -> str:
    """The config without the lines that set ``option``."""
    return re.sub(rf"(?m)^{option} .*\n", "", text)


async def login_error(
    port: int, tls: ssl.SSLContext | None, user: str | None = None, password: str | None = None
) -> str | None:
    """Connect and disconnect; None if the broker accepted the client, else why not."""
    try:
        async with aiomqtt.Client(
            "127.0.0.1", port, username=user, password=password, tls_context=tls, timeout=5
        ):
            return None
    except aiomqtt.MqttError as exc:
        return str(exc) or type(exc).__name__


# MQTT 3.1.1 CONNECT, client id "t", clean session, no credentials.
CONNECT = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01t"


def transport_refusal(port: int, tls: ssl.SSLContext | None) -> str | None:
    """Send a CONNECT: None if a CONNACK (of any code) comes back, else what ended it.

    aiomqtt reports a connection closed before CONNACK only at its timeout; this sees the
    broker's TLS alert or reset at once.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            sock = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
            sock.sendall(CONNECT)
            reply = sock.recv(4)
        except OSError as exc:  # ssl.SSLError included
            return f"{type(exc).__name__}: {exc}"
    return None if reply[:1] == b"\x20" else f"no CONNACK: {reply!r}"


async def wait_login(broker: DeployBroker, user: str, password: str, timeout: float = 10) -> None:
    """Wait until the broker, after a SIGHUP, lets ``user`` in."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while error := await login_error(broker.people_port, broker.tls(), user, password):
        if loop.time() > deadline:
            raise TimeoutError(f"{user} still cannot log in: {error}")
        await asyncio.sleep(0.05)  # mosquitto says nothing when it has re-read its files


@pytest.fixture(scope="module")
def deploy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployBroker]:
    """The deploy broker with users alice and bob, added by `flops user add` and SIGHUP."""
    broker = start_deploy_broker(tmp_path_factory.mktemp("deploy"))
    assert broker.secrets is not None
    for name, password in PASSWORDS.items():
        broker.secrets.add_user(name, password)
    broker.hup()
    asyncio.run(wait_login(broker, "bob", PASSWORDS["bob"]))
    yield broker
    broker.stop()

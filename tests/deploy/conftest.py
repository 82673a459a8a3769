"""Fixtures of the deployment tests: the files under test, and the deploy mosquitto.conf run
by the real mosquitto binary of this machine on a free localhost port.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.server import free_port
from tests.conftest import ROOT, mosquitto_binary

COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"


def load_compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), "compose.yaml is not a mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def local_mosquitto_conf(text: str, port: int, state_dir: Path) -> str:
    """The deploy config with only what must differ here replaced: the listener (a free
    localhost port instead of 1883 on every interface) and the persistence directory.
    """
    out: list[str] = []
    replaced = {"listener": 0, "persistence_location": 0}
    local = {"listener": f"{port} 127.0.0.1", "persistence_location": f"{state_dir}/"}
    for line in text.splitlines():
        key = line.split(" ", 1)[0]
        if key in replaced:
            replaced[key] += 1
            out.append(f"{key} {local[key]}")
        else:
            out.append(line)
    assert replaced == {"listener": 1, "persistence_location": 1}, replaced
    if os.geteuid() == 0:
        # As root mosquitto drops to user 'mosquitto', who cannot write the temp dir.
        out.append(f"user {getpass.getuser()}")
    return "\n".join(out) + "\n"


@dataclass
class DeployBroker:
    """mosquitto running the deploy config; its output goes to ``log``."""

    port: int
    state_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        return self.proc.returncode


def start_mosquitto(conf_text: str, state_dir: Path, timeout: float = 10.0) -> DeployBroker:
    """Start mosquitto with ``conf_text`` (already made local) and wait until it listens.

    Raises ``RuntimeError`` with mosquitto's output when it exits instead of listening.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    port = int(conf_text.split("listener ", 1)[1].split(maxsplit=1)[0])
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
    broker = DeployBroker(port, state_dir, log, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"mosquitto exited with {proc.returncode}: {log.read_text(errors='replace')}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.02)
        else:
            return broker
    broker.stop()
    raise RuntimeError(f"mosquitto did not listen on {port}: {log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def deploy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployBroker]:
    state_dir = tmp_path_factory.mktemp("deploy-mosquitto")
    port = free_port()
    broker = start_mosquitto(
        local_mosquitto_conf(MOSQUITTO_CONF.read_text(), port, state_dir), state_dir
    )
    yield broker
    broker.stop()

"""The embedded broker of the default stack and of the tests.

A ``mosquitto`` found on PATH, started with a generated config (TCP_NODELAY, high but
bounded queues, no retained messages, persistence under the data dir); only where none
exists, amqtt, a pure-Python broker that speaks MQTT 3.1.1 (install the ``embedded-broker``
extra; it has none of these bounds and serves only the single-user default).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from broker.tlsfiles import TlsFiles
from core.errors import BrokerError
from mqtt.link import BrokerAddress

log = logging.getLogger(__name__)


class EmbeddedBroker(Protocol):
    """A broker this process started and must stop."""

    address: BrokerAddress
    kind: str

    @property
    def pid(self) -> int | None:
        """The broker's process id, if it runs in a process of its own."""

    async def stop(self) -> None:
        """Stop the broker and wait for it to exit."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (mosquitto cannot listen on port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Secure:
    """The secure mode's files and the services' own (client-certificate) listener port."""

    tls: TlsFiles
    passwd: Path
    acl: Path
    service_port: int


# What any one client can make the broker keep (docs/security.md, "Broker memory and
# disk"); deploy/mosquitto/mosquitto.conf has the same lines (tests/deploy checks it).
BOUNDS = (
    # Per client, beyond the messages in flight: queued QoS 1 messages for a slow or offline
    # session (the manager's and observers' while they restart; a user's own, which his
    # requests fill with answers). The default of 1000 messages silently drops a restarting
    # service's backlog; a bound in bytes keeps a user's queue from growing without end.
    "max_queued_messages 100000",
    "max_queued_bytes 33554432",
    "max_inflight_messages 1000",
    # A persistent session nobody resumes for a week is dropped with its queue.
    "persistent_client_expiration 7d",
    # The protocol retains nothing; a client that publishes with the retain flag is
    # disconnected, so no one can park messages in the broker for ever.
    "retain_available false",
    # Refuse absurd packets at the broker; our services refuse payloads over 256 KiB.
    "max_packet_size 1048576",
)


def _listeners(port: int, host: str, secure: Secure | None) -> list[str]:
    if secure is None:
        return [f"listener {port} {host}", "allow_anonymous true"]
    tls = secure.tls
    files = [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}"]
    return [
        "per_listener_settings true",
        # people: user name and password over TLS, confined by the ACL
        f"listener {port} {host}",
        "allow_anonymous false",
        f"password_file {secure.passwd}",
        f"acl_file {secure.acl}",
        *files,
        "require_certificate false",
        # services: a client certificate whose common name is the user name
        f"listener {secure.service_port} {host}",
        "allow_anonymous false",
        f"acl_file {secure.acl}",
        *files,
        "require_certificate true",
        "use_identity_as_username true",
    ]


def mosquitto_config(
    port: int, state_dir: Path, host: str = "127.0.0.1", secure: Secure | None = None
) -> str:
    """The generated mosquitto.conf: listener(s), nodelay, bounded queues, persistence."""
    lines = [
        *_listeners(port, host, secure),
        "set_tcp_nodelay true",
        *BOUNDS,
        "persistence true",
        f"persistence_location {state_dir}/",
        "autosave_interval 5",
        f"log_dest file {state_dir / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        # A line per connect, with the client's chosen id (up to 64 KiB): a user who loops
        # connects would fill the disk. Errors, warnings and dropped queues are still logged.
        "connection_messages false",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if os.geteuid() == 0:
        # As root mosquitto drops to user 'mosquitto', who cannot write our state dir.
        lines.append(f"user {getpass.getuser()}")
    return "\n".join(lines) + "\n"


async def _wait_listening(
    address: BrokerAddress, proc: asyncio.subprocess.Process, timeout: float
) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc.returncode is not None:
            return False
        try:
            _, writer = await asyncio.open_connection(address.host, address.port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


class Mosquitto:
    """A mosquitto child process with a generated configuration."""

    kind = "mosquitto"

    def __init__(
        self, proc: asyncio.subprocess.Process, address: BrokerAddress, state_dir: Path
    ) -> None:
        self.proc = proc
        self.address = address
        self.state_dir = state_dir

    @property
    def pid(self) -> int | None:
        """Mosquitto's process id (SIGHUP makes it re-read its password and ACL files)."""
        return self.proc.pid

    @classmethod
    async def start(
        cls,
        state_dir: Path,
        port: int = 0,
        host: str = "127.0.0.1",
        binary: str = "mosquitto",
        secure: Secure | None = None,
    ) -> Mosquitto:
        """Start mosquitto on ``port`` (a free one if 0) and wait until it listens."""
        state_dir.mkdir(parents=True, exist_ok=True)
        attempts = 3 if port == 0 else 1
        remembered = state_dir / "port"
        for attempt in range(attempts):
            chosen = (
                port or (_remembered_port(remembered) if attempt == 0 else 0) or free_port(host)
            )
            conf = state_dir / "mosquitto.conf"
            conf.write_text(mosquitto_config(chosen, state_dir, host, secure))
            proc = await asyncio.create_subprocess_exec(
                binary,
                "-c",
                str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            address = BrokerAddress(host, chosen)
            if await _wait_listening(address, proc, 10.0):
                remembered.write_text(str(chosen))  # same address after a restart
                return cls(proc, address, state_dir)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            _, err = await proc.communicate()
            reason = err.decode(errors="replace").strip() or _tail(state_dir / "mosquitto.log")
            log.warning("mosquitto did not start on port %d: %s", chosen, reason)
        raise BrokerError(f"mosquitto did not start on {host}:{port or 'a free port'}: {reason}")

    async def stop(self) -> None:
        """Terminate mosquitto (it saves its persistence file) and wait for it."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def _remembered_port(path: Path) -> int:
    """The port used last time if it is free now, else 0."""
    try:
        port = int(path.read_text())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
    except (OSError, ValueError):
        return 0
    return port


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-3:])
    except OSError:
        return "no log"


class Amqtt:
    """amqtt running inside this process: the fallback where no mosquitto exists."""

    kind = "amqtt"

    def __init__(self, broker: Any, address: BrokerAddress) -> None:  # noqa: ANN401 - untyped amqtt
        self.broker = broker
        self.address = address

    @property
    def pid(self) -> int | None:
        """None: amqtt runs inside this process."""
        return None

    @classmethod
    async def start(cls, port: int = 0, host: str = "127.0.0.1") -> Amqtt:
        """Start an in-process amqtt broker."""
        try:
            from amqtt.broker import Broker  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise BrokerError(
                "no mosquitto on PATH and amqtt is not installed: install mosquitto "
                "(apt-get install mosquitto) or pip install 'flops-mqtt[embedded-broker]'"
            ) from exc
        chosen = port or free_port(host)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{chosen}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        broker = Broker(config)
        await broker.start()
        return cls(broker, BrokerAddress(host, chosen))

    async def stop(self) -> None:
        """Shut the in-process broker down."""
        await self.broker.shutdown()


def find_mosquitto() -> str | None:
    """The mosquitto binary: on PATH, or Debian's /usr/sbin (not on a user's PATH)."""
    debian = Path("/usr/sbin/mosquitto")
    return shutil.which("mosquitto") or (str(debian) if debian.exists() else None)


async def start_embedded(
    state_dir: Path, port: int = 0, prefer: str = "auto", secure: Secure | None = None
) -> EmbeddedBroker:
    """Start mosquitto if one is on PATH (or ``prefer == 'mosquitto'``), else amqtt.

    The secure mode (passwords, ACL, TLS) needs mosquitto.
    """
    binary = find_mosquitto()
    if secure is None and (prefer == "amqtt" or (prefer == "auto" and binary is None)):
        return await Amqtt.start(port)
    if binary is None or prefer == "amqtt":
        raise BrokerError(
            "the secure mode needs mosquitto (apt-get install mosquitto)"
            if secure
            else "mosquitto is not installed (apt-get install mosquitto)"
        )
    return await Mosquitto.start(state_dir, port, binary=binary, secure=secure)

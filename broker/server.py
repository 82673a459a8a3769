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
import itertools
import logging
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from broker import lifetime
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

    async def supervise(self, stop: asyncio.Event, restarted: Callable[[], None]) -> None:
        """Until ``stop``: start the broker again whenever it dies, then call ``restarted``."""


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
    """A mosquitto child process with a generated configuration, started again if it dies."""

    kind = "mosquitto"
    RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0)  # between attempts while it will not start

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        address: BrokerAddress,
        state_dir: Path,
        binary: str = "mosquitto",
    ) -> None:
        self.proc = proc
        self.address = address
        self.state_dir = state_dir
        self.binary = binary

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
        """Start mosquitto on ``port`` (a free one if 0) and wait until it listens.

        With ``port`` 0 the port of the last start is taken again if nothing listens on it,
        so clients that knew the old address find the new broker. A mosquitto that a killed
        stack left running on this state dir is ended first (it saves its persistence).
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        await lifetime.end_leftover(state_dir)
        attempts = 3 if port == 0 else 1
        remembered = state_dir / "port"
        for attempt in range(attempts):
            chosen = (
                port or (_remembered_port(remembered) if attempt == 0 else 0) or free_port(host)
            )
            conf = state_dir / "mosquitto.conf"
            conf.write_text(mosquitto_config(chosen, state_dir, host, secure))
            address = BrokerAddress(host, chosen)
            proc, reason = await _launch(binary, state_dir, address)
            if proc is not None:
                remembered.write_text(str(chosen))  # same address after a restart
                return cls(proc, address, state_dir, binary)
            log.warning("mosquitto did not start on port %d: %s", chosen, reason)
        raise BrokerError(f"mosquitto did not start on {host}:{port or 'a free port'}: {reason}")

    async def supervise(self, stop: asyncio.Event, restarted: Callable[[], None]) -> None:
        """Until ``stop``: whenever mosquitto dies, start it again on the same port.

        Same configuration, so the same persistence file: sessions and queued messages
        come back; the services' links reconnect by themselves.
        """
        while not await lifetime.ended_before(self.proc, stop):
            log.warning(
                "the broker (mosquitto, pid %d) exited with code %s; starting it again on %s",
                self.proc.pid,
                self.proc.returncode,
                self.address,
            )
            for delay in itertools.chain(self.RESTART_DELAYS, itertools.repeat(5.0)):
                if await lifetime.stopped_within(stop, delay):
                    return
                proc, reason = await _launch(self.binary, self.state_dir, self.address)
                if proc is not None:
                    self.proc = proc
                    log.info("the broker runs again (pid %d) on %s", proc.pid, self.address)
                    restarted()
                    break
                log.warning("mosquitto did not start again on %s: %s", self.address, reason)

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
        lifetime.pid_file(self.state_dir).unlink(missing_ok=True)


async def _launch(
    binary: str, state_dir: Path, address: BrokerAddress
) -> tuple[asyncio.subprocess.Process | None, str]:
    """Start mosquitto with the config in ``state_dir``; the process once it listens."""
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(state_dir / "mosquitto.conf"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    if await _wait_listening(address, proc, 10.0):
        lifetime.pid_file(state_dir).write_text(str(proc.pid))  # for the next start, should we die
        return proc, ""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    _, err = await proc.communicate()
    return None, err.decode(errors="replace").strip() or _tail(state_dir / "mosquitto.log")


def _remembered_port(path: Path) -> int:
    """The port used last time if nothing listens on it now, else 0.

    Probed as mosquitto binds (``SO_REUSEADDR``): connections of the last broker that sit
    in TIME-WAIT after a crash do not stop it from listening there again.
    """
    try:
        port = int(path.read_text())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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

    async def supervise(self, stop: asyncio.Event, restarted: Callable[[], None]) -> None:
        """Nothing to supervise: amqtt lives and dies with this process."""
        del restarted
        await stop.wait()


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

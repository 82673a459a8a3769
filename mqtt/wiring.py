"""How a process reaches the broker: the address people use, its own link's, and TLS."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError
from mqtt.link import BrokerAddress, Credentials
from mqtt.tls import client_context


@dataclass(frozen=True)
class Wiring:
    """Where people reach the broker, and how the stack's own link reaches it."""

    address: BrokerAddress
    link_address: BrokerAddress
    credentials: Credentials | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # the services' client certificate, for child processes
    key_file: Path | None = None
    secret: bytes | None = field(default=None, repr=False)  # the services' private key

    def client_id(self, name: str) -> str:
        """The MQTT client id (or shared group) of service ``name``: unguessable by users.

        Keyed by the services' private key when they have one (the secure mode, TLS with a
        client certificate); without it anyone may connect anyway, and ``name`` is used.
        """
        return private_name(name, self.secret)


def connect_to(
    host: str,
    port: int,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    *,
    ca_pem: str = "",
) -> Wiring:
    """The wiring of a broker at ``host:port``, with TLS when a CA is given.

    The CA as a file (``ca``) or as the text of its certificate (``ca_pem``, what an
    Oakestra service's SLA carries).
    """
    address = BrokerAddress(host, port)
    if ca is None and not ca_pem:
        return Wiring(address, address)
    tls = client_context(ca, cert, key, ca_pem=ca_pem)
    return Wiring(address, address, Credentials(tls=tls), ca, cert, key, key_secret(cert, key))


def private_name(name: str, secret: bytes | None) -> str:
    """``name`` with a suffix that only holders of ``secret`` can compute; without one, ``name``.

    Users choose their own client ids, and mosquitto drops the older of two connections
    with one id, whatever the listener or user (mosquitto 2.0 cannot bind client ids to
    users): the services' client ids and their shared-subscription group are names no user
    can know or guess, keyed by the services' private key (docs/security.md).
    """
    if secret is None:
        return name
    tag = hmac.new(secret, b"flops private name\0" + name.encode(), hashlib.sha256)
    return f"{name}-{tag.hexdigest()[:32]}"


def key_secret(cert: Path | None, key: Path | None) -> bytes | None:
    """The services' private key (from the file that holds it): the key of ``private_name``."""
    source = key or cert
    if source is None:
        return None
    try:
        return source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the services' key {source}: {exc}") from exc

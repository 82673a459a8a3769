"""The secure mode of the embedded stack, and TLS to an external broker.

``flops up --secure`` starts mosquitto with two TLS listeners: people log in with a user
name and password (hashes in ``<data>/broker/passwd``, managed by ``flops user``) and the
ACL confines each user to ``flops/v1/users/<name>/``; the stack's services log in on a
second listener with a client certificate. Certificates live in ``<data>/tls``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from broker.link import BrokerAddress, Credentials
from broker.security import ACL, SERVICE_USER, client_context, ensure_certificates
from broker.server import Secure, free_port
from stack.settings import StackSettings


@dataclass(frozen=True)
class Wiring:
    """Where people reach the broker, and how the stack's own link reaches it."""

    address: BrokerAddress
    link_address: BrokerAddress
    credentials: Credentials | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None  # the services' client certificate, for child processes
    key_file: Path | None = None


def passwd_path(data_dir: Path) -> Path:
    """The broker's password file (hashes only)."""
    return data_dir / "broker" / "passwd"


def prepare(settings: StackSettings) -> Secure:
    """Certificates, an (initially empty) password file and the ACL, for mosquitto."""
    tls = ensure_certificates(settings.data_dir / "tls")
    passwd = passwd_path(settings.data_dir)
    passwd.parent.mkdir(parents=True, exist_ok=True)
    if not passwd.exists():
        os.close(os.open(passwd, os.O_WRONLY | os.O_CREAT, 0o600))
    acl = passwd.parent / "acl"
    acl.write_text(ACL.format(service=SERVICE_USER))
    return Secure(tls, passwd, acl, free_port())


def embedded(address: BrokerAddress, secure: Secure | None) -> Wiring:
    """The wiring of an embedded broker, secure or not."""
    if secure is None:
        return Wiring(address, address)
    tls = client_context(secure.tls.ca, secure.tls.service_cert, secure.tls.service_key)
    link = BrokerAddress(address.host, secure.service_port)
    files = secure.tls
    return Wiring(
        address, link, Credentials(tls=tls), files.ca, files.service_cert, files.service_key
    )


def external(settings: StackSettings) -> Wiring:
    """The wiring of an external broker: TLS when a CA file is set, a client cert if given."""
    return connect_to(
        settings.broker_host,
        settings.broker_port or 1883,
        settings.ca_file,
        settings.cert_file,
        settings.key_file,
    )


def connect_to(
    host: str, port: int, ca: Path | None, cert: Path | None, key: Path | None
) -> Wiring:
    """The wiring of a broker at ``host:port``, with TLS when ``ca`` is set."""
    address = BrokerAddress(host, port)
    if ca is None:
        return Wiring(address, address)
    tls = client_context(ca, cert, key)
    return Wiring(address, address, Credentials(tls=tls), ca, cert, key)

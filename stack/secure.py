"""The secure mode of the embedded stack, and TLS to an external broker.

``flops up --secure`` starts mosquitto with two TLS listeners: people log in with a user
name and password (hashes in ``<data>/broker/passwd``, managed by ``flops user``) and the
ACL confines each user to ``flops/v1/users/<name>/``; the stack's services log in on a
second listener with a client certificate. Certificates live in ``<data>/tls``.
"""

from __future__ import annotations

import os
from pathlib import Path

from broker import accounts
from broker.accounts import ProjectAccounts, signal_reload
from broker.security import ACL, PasswordFile, ensure_certificates
from broker.server import EmbeddedBroker, Secure, free_port
from broker.tlsfiles import SERVICE_USER, TlsFiles
from mqtt.link import BrokerAddress, Credentials
from mqtt.tls import client_context
from mqtt.wiring import Wiring, connect_to, key_secret
from stack.settings import StackSettings

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def passwd_path(data_dir: Path) -> Path:
    """The broker's password file (hashes only)."""
    return data_dir / "broker" / "passwd"


def acl_path(data_dir: Path) -> Path:
    """The broker's ACL file."""
    return data_dir / "broker" / "acl"


def actors_path(data_dir: Path) -> Path:
    """Where the training actors' passwords are while their projects train (``broker.accounts``)."""
    return data_dir / "broker" / "actors"


def ensure_files(folder: Path, hosts: tuple[str, ...] = LOCAL_HOSTS) -> TlsFiles:
    """Certificates in ``folder/tls``, an (initially empty) password file and the ACL.

    Files that exist are kept (the ACL is rewritten only when its text differs), so a
    second call changes nothing. The layout is the same for the embedded stack's data dir
    and for a deployment's secrets volume (``flops secure init``).
    """
    tls = ensure_certificates(folder / "tls", hosts)
    passwd = passwd_path(folder)
    passwd.parent.mkdir(parents=True, exist_ok=True)
    if not passwd.exists():
        os.close(os.open(passwd, os.O_WRONLY | os.O_CREAT, 0o600))
    acl = acl_path(folder)
    text = ACL.format(service=SERVICE_USER)
    if not acl.exists() or acl.read_text() != text:
        fd = os.open(acl, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    return tls


def prepare(settings: StackSettings) -> Secure:
    """Certificates, the password file and the ACL, for mosquitto; no actor account is left."""
    tls = ensure_files(settings.data_dir)
    accounts.purge(PasswordFile(passwd_path(settings.data_dir)), actors_path(settings.data_dir))
    return Secure(tls, passwd_path(settings.data_dir), acl_path(settings.data_dir), free_port())


def embedded(address: BrokerAddress, secure: Secure | None) -> Wiring:
    """The wiring of an embedded broker, secure or not."""
    if secure is None:
        return Wiring(address, address)
    tls = client_context(secure.tls.ca, secure.tls.service_cert, secure.tls.service_key)
    link = BrokerAddress(address.host, secure.service_port)
    files = secure.tls
    return Wiring(
        address,
        link,
        Credentials(tls=tls),
        files.ca,
        files.service_cert,
        files.service_key,
        key_secret(files.service_cert, files.service_key),
    )


def actor_accounts(data_dir: Path, broker: EmbeddedBroker, secure: Secure) -> ProjectAccounts:
    """The accounts of the training actors on the embedded broker's password listener."""
    return ProjectAccounts(
        PasswordFile(passwd_path(data_dir)),
        actors_path(data_dir),
        broker.address,
        secure.tls.ca,
        signal_reload(lambda: broker.pid),
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

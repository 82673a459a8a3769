"""What a FLOps service on Oakestra is told about the broker: where it is, how to trust it.

It goes into the service SLA's ``environment``, which the node engine hands the container.
Oakestra keeps that SLA and shows it to the account that owns it (FLOps' own) and to its
admins, so nothing secret goes there: the CA certificate is public, and a client
certificate and its key are named by their paths in the container, which the node provides.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError
from mqtt.link import BrokerAddress

if TYPE_CHECKING:
    from runtimes.oakestra import OakestraSettings

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def broker_environment(
    settings: OakestraSettings, broker: BrokerAddress | None, ca_file: Path | None
) -> dict[str, str]:
    """The variables that tell a container how to reach the broker; nothing secret.

    The CA certificate goes in as text (``FLOPS_CA_PEM``): it is public. A client
    certificate and its key are named by their paths in the container, which the node
    provides; a CA file that holds a private key is refused.
    """
    host = settings.broker_host or (broker.host if broker else "")
    port = settings.broker_port or (broker.port if broker else 0)
    if host in LOOPBACK:
        log.warning(
            "Oakestra's containers are told the broker is at %s, this host's loopback: set "
            "[oakestra] broker_host to a name they can reach",
            host,
        )
    env = {"FLOPS_BROKER_HOST": host, "FLOPS_BROKER_PORT": str(port) if port else ""}
    ca = settings.ca_file or ca_file
    if ca is not None:
        env["FLOPS_CA_PEM"] = _public_certificate(ca)
    env |= {"FLOPS_CERT_FILE": settings.cert_path, "FLOPS_KEY_FILE": settings.key_path}
    return {name: value for name, value in env.items() if value}


def _public_certificate(path: Path) -> str:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[oakestra] ca_file {path} cannot be read: {exc}") from exc
    if "PRIVATE KEY" in text or "BEGIN CERTIFICATE" not in text:
        raise ConfigError(
            f"[oakestra] ca_file {path} must hold certificates only (it goes into every "
            "service's SLA, which Oakestra shows its account)"
        )
    return text

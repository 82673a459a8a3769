"""How a process reaches the broker: the address people use, its own link's, and TLS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def connect_to(
    host: str, port: int, ca: Path | None, cert: Path | None, key: Path | None
) -> Wiring:
    """The wiring of a broker at ``host:port``, with TLS when ``ca`` is set."""
    address = BrokerAddress(host, port)
    if ca is None:
        return Wiring(address, address)
    tls = client_context(ca, cert, key)
    return Wiring(address, address, Credentials(tls=tls), ca, cert, key)

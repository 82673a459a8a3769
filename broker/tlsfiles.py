"""Where the secure mode's TLS files are, and the user name the services' certificate carries.

Shared by ``broker.security`` (which makes them when missing) and ``broker.certs`` (which
writes them), so neither imports the other's module for these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "flops-stack"


@dataclass(frozen=True)
class TlsFiles:
    """The CA, the broker's certificate and the services' client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    service_cert: Path
    service_key: Path

    @classmethod
    def under(cls, folder: Path) -> TlsFiles:
        """The file names under ``folder``."""
        return cls(
            folder / "ca.crt",
            folder / "server.crt",
            folder / "server.key",
            folder / "service.crt",
            folder / "service.key",
        )

    def complete(self) -> bool:
        """Whether all five files exist (then nothing makes new ones)."""
        return all(
            p.exists()
            for p in (
                self.ca,
                self.server_cert,
                self.server_key,
                self.service_cert,
                self.service_key,
            )
        )

"""The TLS context of a client: verify the broker against a CA, present a client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from core.errors import ConfigError


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A TLS context that verifies the broker against ``ca`` (and presents a client cert)."""
    try:
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files ({ca}, {cert}, {key}): {exc}") from exc
    return context

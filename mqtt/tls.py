"""The TLS context of a client: verify the broker against a CA, present a client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from core.errors import ConfigError


def client_context(
    ca: Path | None, cert: Path | None = None, key: Path | None = None, *, ca_pem: str = ""
) -> ssl.SSLContext:
    """A TLS context that verifies the broker, presenting a client certificate if given.

    The CA comes as a file (``ca``) or as the text of its certificate (``ca_pem``).
    """
    try:
        context = ssl.create_default_context(
            cafile=str(ca) if ca is not None else None, cadata=ca_pem or None
        )
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files ({ca}, {cert}, {key}): {exc}") from exc
    return context

"""The services' private client ids (unit): keyed by their private key, stable, distinct."""

from __future__ import annotations

from pathlib import Path

from mqtt.wiring import key_secret, private_name


def test_a_private_name_needs_the_key_and_is_stable(tmp_path: Path) -> None:
    key, other = tmp_path / "service.key", tmp_path / "other.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nkey one\n")
    other.write_bytes(b"-----BEGIN PRIVATE KEY-----\nkey two\n")
    name = private_name("flops-stack", key_secret(None, key))
    assert name.startswith("flops-stack-") and len(name) == len("flops-stack-") + 32
    assert name == private_name("flops-stack", key_secret(None, key))  # a restart: same session
    assert name != private_name("flops-stack", key_secret(None, other))
    assert private_name("observ0123", key_secret(None, key)) != name
    assert private_name("flops-stack", key_secret(None, None)) == "flops-stack"  # no key

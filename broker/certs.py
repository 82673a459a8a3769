"""Certificate generation for the secure mode (needs ``cryptography``: the secure extra)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.tlsfiles import SERVICE_USER, TlsFiles

Key = ec.EllipticCurvePrivateKey


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FLOps local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _write_key(key: Key, path: Path) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(
    subject: str, issuer: x509.Name, key: Key, life: dt.timedelta
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + life)
    )


def write_all(files: TlsFiles, hosts: tuple[str, ...], life: dt.timedelta) -> None:
    """Write a CA, a server certificate for ``hosts`` and a service client certificate.

    The CA's private key is not kept: nothing can issue further certificates from it.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        _builder("FLOps local CA", _name("FLOps local CA"), ca_key, life)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _builder("FLOps broker", ca.subject, server_key, life)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    service_key = ec.generate_private_key(ec.SECP256R1())
    service = (
        _builder(SERVICE_USER, ca.subject, service_key, life)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_cert(ca, files.ca)
    for cert, key, cert_path, key_path in (
        (server, server_key, files.server_cert, files.server_key),
        (service, service_key, files.service_cert, files.service_key),
    ):
        _write_key(key, key_path)
        _write_cert(cert, cert_path)


def server_hosts(path: Path) -> set[str]:
    """The host names and addresses a server certificate is valid for (its SANs)."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = set(sans.get_values_for_type(x509.DNSName))
    return names | {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}

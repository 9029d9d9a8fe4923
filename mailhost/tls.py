"""TLS for every listener: MAILHOST_TLS_CERT/KEY, or a self-signed pair generated once."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import threading
from pathlib import Path

from django.conf import settings

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def certificate_paths() -> tuple[Path, Path]:
    if settings.MAILHOST_TLS_CERT:
        return Path(settings.MAILHOST_TLS_CERT), Path(settings.MAILHOST_TLS_KEY)
    directory = settings.DATA_DIR / "tls"
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not (cert.exists() and key.exists()):
        _generate_self_signed(directory, cert, key, settings.MAILHOST_HOSTNAME)
    return cert, key


def server_context() -> ssl.SSLContext:
    """The server-side context shared by SMTP, IMAP, POP3 (TLS 1.2 or newer)."""
    global _context
    with _lock:
        if _context is None:
            cert, key = certificate_paths()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(str(cert), str(key))
            except (OSError, ssl.SSLError) as exc:
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(
                    f"MAILHOST_TLS_CERT={str(cert)!r}, MAILHOST_TLS_KEY={str(key)!r}:"
                    f" cannot load the certificate and key: {exc}"
                ) from None
            _context = context
        return _context


def _generate_self_signed(directory: Path, cert_path: Path, key_path: Path, hostname: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_tmp = key_path.with_suffix(f".tmp{os.getpid()}")
    cert_tmp = cert_path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(key_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(key_tmp, key_path)
    os.replace(cert_tmp, cert_path)

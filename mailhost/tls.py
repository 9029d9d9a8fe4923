"""TLS for every listener: MAILHOST_TLS_CERT/KEY (or ACME's certificate for MAILHOST_HOSTNAME),
or a self-signed pair generated into the data dir, made again whenever the names it must carry
change (MAILHOST_HOSTNAME, the bind address).

A client that names the host it wants (SNI, RFC 6066 3) gets the certificate for that name
when there is one: each PEM file (chain and key) in MAILHOST_TLS_CERTS_DIR, then ACME's
per-domain certificates (mailhost/acme.py), by their subjectAltNames (`*.example.org` matches
one label); any other name, or none, gets the default one above. A client asking for a name
with a pending ACME tls-alpn-01 challenge gets the challenge certificate, with ALPN acme-tls/1
(RFC 8737 3). SIGHUP (reload) reads all of them again."""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import logging
import os
import ssl
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_context: ssl.SSLContext | None = None
# SNI: host name -> context, and for wildcard certificates parent domain -> context; replaced
# whole by reload(), read by the handshake callback.
_by_name: dict[str, ssl.SSLContext] = {}
_by_parent: dict[str, ssl.SSLContext] = {}

UNSPECIFIED_ADDRESSES = {"0.0.0.0", "::"}

# The most plaintext one TLS record carries (RFC 8446 5.1, RFC 5246 6.2.1): one SSL_read
# never returns more.
RECORD_PLAINTEXT = 16384


class RecordSizedReads(ssl.SSLObject):
    """The SSLObject of every server connection (SSLContext.sslobject_class): reads without a
    buffer ask for at most one record's plaintext. uvloop's and asyncio's SSL protocols read
    decrypted data with read(256 KiB), and _ssl allocates a bytes object of the size asked for
    before it reads (then shrinks it): 256 KiB is beyond malloc's mmap threshold, so every
    read of a command cost an mmap, an mremap, a munmap and their page faults, about 15 us
    against 2 for 16 KiB. They read again while anything is pending, so what the protocol
    receives is the same."""

    def read(self, len: int = 1024, buffer=None):  # noqa: A002, ANN001 - SSLObject.read's own
        if buffer is not None:
            return self._sslobj.read(len, buffer)
        return self._sslobj.read(len if len < RECORD_PLAINTEXT else RECORD_PLAINTEXT)


def self_signed_names(hostname: str, bind: str) -> tuple[list[str], list[str]]:
    """The subjectAltName a generated certificate carries: DNS:<hostname>, and IP:<bind>
    when the listeners bind one address (clients connecting by address verify that)."""
    addresses = [] if bind in UNSPECIFIED_ADDRESSES else [str(ipaddress.ip_address(bind))]
    return [hostname.lower()], addresses


def certificate_paths() -> tuple[Path, Path]:
    if settings.MAILHOST_TLS_CERT:
        return Path(settings.MAILHOST_TLS_CERT), Path(settings.MAILHOST_TLS_KEY)
    if settings.MAILHOST_ACME_DIRECTORY:
        from mailhost import acme

        cert, key = acme.certificate_files()
        if cert.exists() and key.exists():
            return cert, key
        # None yet: the self-signed one below until runmail's first issuance reloads.
    directory = settings.DATA_DIR / "tls"
    cert, key = directory / "cert.pem", directory / "key.pem"
    names = self_signed_names(settings.MAILHOST_HOSTNAME, settings.MAILHOST_BIND)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # One process at a time (MAILHOST_PROCESSES front ends start together): never a key from
    # one and a certificate from another.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (key.exists() and _certificate_names(cert) == names):
            if cert.exists():
                logger.warning(
                    "tls regenerating self-signed certificate cert=%s names=%s (was %s)",
                    cert,
                    _describe(names),
                    _describe(_certificate_names(cert)),
                )
            _generate_self_signed(directory, cert, key, *names)
    # An operator must see this at every start: clients will warn or refuse.
    logger.warning(
        "tls SELF-SIGNED certificate in use cert=%s names=%s: mail clients and other servers"
        " cannot verify it; set MAILHOST_TLS_CERT and MAILHOST_TLS_KEY to a certificate from a"
        " CA (e.g. Let's Encrypt) for %s",
        cert,
        _describe(names),
        settings.MAILHOST_HOSTNAME,
    )
    return cert, key


def server_context() -> ssl.SSLContext:
    """The server-side context shared by SMTP, IMAP, POP3 (TLS 1.2 or newer)."""
    global _context
    with _lock:
        if _context is None:
            cert, key = certificate_paths()
            try:
                context = _new_context(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise ImproperlyConfigured(
                    f"MAILHOST_TLS_CERT={str(cert)!r}, MAILHOST_TLS_KEY={str(key)!r}:"
                    f" cannot load the certificate and key: {exc}"
                ) from None
            _load_named()
            context.sni_callback = _choose_certificate
            _context = context
        return _context


def _new_context(cert: Path, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslobject_class = RecordSizedReads
    context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def named_certificate_files() -> list[tuple[Path, Path | None]]:
    """The certificates chosen by name, in order of precedence: the operator's own
    (MAILHOST_TLS_CERTS_DIR, chain and key in one file), then ACME's per-domain ones."""
    files: list[tuple[Path, Path | None]] = []
    if settings.MAILHOST_TLS_CERTS_DIR:
        files += [
            (path, None) for path in sorted(Path(settings.MAILHOST_TLS_CERTS_DIR).glob("*.pem"))
        ]
    if settings.MAILHOST_ACME_DIRECTORY:
        from mailhost import acme

        files += acme.domain_certificate_files()
    return files


def _load_named() -> None:
    """Build the SNI maps from named_certificate_files(); a file that cannot be loaded is
    logged and left out (the others, and the default certificate, still serve)."""
    global _by_name, _by_parent
    by_name: dict[str, ssl.SSLContext] = {}
    by_parent: dict[str, ssl.SSLContext] = {}
    for cert, key in named_certificate_files():
        names = _certificate_names(cert)
        try:
            context = _new_context(cert, key)
        except (OSError, ssl.SSLError) as exc:
            logger.error('tls certificate skipped cert=%s error="%s"', cert, exc)
            continue
        if not names or not names[0]:
            logger.error("tls certificate skipped cert=%s error=no DNS subjectAltName", cert)
            continue
        for name in names[0]:
            if name.startswith("*."):
                by_parent.setdefault(name[2:], context)
            else:
                by_name.setdefault(name, context)
        logger.info("tls certificate for names=%s cert=%s", ",".join(names[0]), cert)
    _by_name, _by_parent = by_name, by_parent


def context_for(server_name: str | None) -> ssl.SSLContext | None:
    """The context of a named certificate for this SNI name, or None for the default."""
    if not server_name:
        return None
    name = server_name.lower().rstrip(".")
    chosen = _by_name.get(name)
    if chosen is None and "." in name:
        chosen = _by_parent.get(name.split(".", 1)[1])
    return chosen


def _choose_certificate(connection, server_name: str | None, context) -> None:  # noqa: ANN001
    """The SNI callback (ssl.SSLContext.sni_callback): switch the handshake to the context of
    the name asked for. Returning None lets the handshake go on with whatever is set."""
    if not server_name:
        return None
    challenge = _acme_challenge_context(server_name.lower().rstrip("."))
    chosen = challenge or context_for(server_name)
    if chosen is not None:
        connection.context = chosen
    return None


def _acme_challenge_context(name: str) -> ssl.SSLContext | None:
    """RFC 8737 3: while a tls-alpn-01 challenge for `name` is pending (mailhost/acme.py
    writes its certificate, perhaps from another process), the handshake for that name gets
    it and negotiates acme-tls/1; the HTTPS relay then closes without relaying."""
    if not settings.MAILHOST_ACME_DIRECTORY or settings.MAILHOST_ACME_CHALLENGE != "tls-alpn-01":
        return None
    from mailhost import acme

    path = acme.alpn_challenge_file(name)
    if path is None or not path.exists():
        return None
    try:
        context = _new_context(path, None)
    except (OSError, ssl.SSLError) as exc:
        logger.error('acme challenge certificate unusable name=%s error="%s"', name, exc)
        return None
    context.set_alpn_protocols([acme.ALPN_PROTOCOL])
    return context


def reload() -> None:
    """SIGHUP: load the certificate and key files again into the one context every listener
    uses, so new handshakes present the new certificate and open sessions carry on, and the
    certificates chosen by name (SNI) afresh. Called on the event loop's thread
    (mailhost/runner.py), where every asyncio handshake starts, so none starts between the
    certificate and the key being replaced. A pair that cannot be loaded is logged and the old
    one kept."""
    with _lock:
        if _context is None:
            return
        cert = None
        try:
            cert, key = certificate_paths()
            # Checked on a scratch context first: a bad pair must not half-replace the old one.
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
            _context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            logger.error(
                'tls reload failed cert=%s error="%s": keeping the old certificate', cert, exc
            )
            cert = None
        _load_named()
    if cert is not None:
        logger.info("tls reloaded cert=%s", cert)


def _describe(names: tuple[list[str], list[str]] | None) -> str:
    if names is None:
        return "none"
    dns, addresses = names
    return ",".join([f"DNS:{n}" for n in dns] + [f"IP:{a}" for a in addresses])


def _certificate_names(path: Path) -> tuple[list[str], list[str]] | None:
    """The DNS and IP subjectAltNames of a certificate file; None if there is none."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    dns = [name.lower() for name in alt.get_values_for_type(x509.DNSName)]
    return dns, [str(a) for a in alt.get_values_for_type(x509.IPAddress)]


def _generate_self_signed(
    directory: Path, cert_path: Path, key_path: Path, dns: list[str], addresses: list[str]
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0][:64])])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
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
    fd = os.open(cert_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(key_tmp, key_path)
    os.replace(cert_tmp, cert_path)

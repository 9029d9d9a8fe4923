"""ACME (RFC 8555) certificates: MAILHOST_ACME_DIRECTORY names the CA's directory. One
certificate names MAILHOST_HOSTNAME; with MAILHOST_ACME_DOMAIN_NAMES each active hosted domain
gets one of its own for its mail., autoconfig. and mta-sts. names that resolve to us, which
mailhost/tls.py presents to a client asking for one of those names (SNI). A domain apart
keeps one domain's unpublished record from failing everyone's order, keeps a customer's
certificate from listing every other customer, and stays under the CA's limit of names per
certificate (Let's Encrypt: 100).

Challenges (MAILHOST_ACME_CHALLENGE) are answered by Mailhost itself: http-01 (RFC 8555 8.3)
by the web port at /.well-known/acme-challenge/<token>, tls-alpn-01 (RFC 8737) by the HTTPS
port, which presents the challenge certificate to a client asking for the name with ALPN
acme-tls/1. Either is a file under DATA_DIR/tls/acme/, so `manage.py acmecert` in another
process is answered by runmail's listeners. Certificates, keys and the account key live in
DATA_DIR/tls/acme/ (mode 0700; the hostname's in it, each domain's in domains/<name>/).

`ensure()` issues when a certificate is missing, names other names, or expires within
MAILHOST_ACME_RENEW_DAYS; runmail calls it at start-up and every MAILHOST_ACME_CHECK_INTERVAL
seconds off the event loop, then `tls.reload()` on the loop. Everything here blocks (HTTP to
the CA): never call it on the event loop."""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import logging
import os
import re
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

TOKEN = re.compile(r"[A-Za-z0-9_-]+")  # RFC 8555 8.1: base64url
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")

# RFC 8737 3: the ALPN protocol of the validation handshake and the certificate extension
# that carries the SHA-256 digest of the key authorization.
ALPN_PROTOCOL = "acme-tls/1"
ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31"


class AcmeIncomplete(Exception):
    """Some certificates could not be had (the others were kept or issued): `issued` says
    whether any new one was written, so that the caller still reloads."""

    def __init__(self, message: str, *, issued: bool) -> None:
        super().__init__(message)
        self.issued = issued


def directory() -> Path:
    return settings.DATA_DIR / "tls" / "acme"


def certificate_files(domain: str = "") -> tuple[Path, Path]:
    """The certificate (full chain) and key of MAILHOST_HOSTNAME, or of a hosted domain."""
    base = directory() / "domains" / domain if domain else directory()
    return base / "cert.pem", base / "key.pem"


def domain_certificate_files() -> list[tuple[Path, Path]]:
    """Every hosted domain's certificate and key on disk (for mailhost/tls.py's SNI map)."""
    pairs = []
    for base in sorted((directory() / "domains").glob("*")):
        cert, key = base / "cert.pem", base / "key.pem"
        if cert.exists() and key.exists():
            pairs.append((cert, key))
    return pairs


# Each hosted domain's names clients and other servers reach us by (autoconfig, MTA-STS).
DOMAIN_PREFIXES = ("mail", "autoconfig", "mta-sts")


def certificate_sets() -> dict[str, list[str]]:
    """The certificates wanted and their names: "" (MAILHOST_HOSTNAME's) first, then with
    MAILHOST_ACME_DOMAIN_NAMES each active hosted domain whose mail., autoconfig. or mta-sts.
    names resolve (MAILHOST_DNS_SERVERS) to an address of MAILHOST_HOSTNAME, with those names
    (a name that does not would fail the CA's validation; a domain with none gets none)."""
    from delivery import dns
    from mailboxes.selectors import domain_names_active

    hostname = settings.MAILHOST_HOSTNAME.lower()
    wanted = {"": [hostname]}
    if not settings.MAILHOST_ACME_DOMAIN_NAMES:
        return wanted
    ours = set(_addresses(dns, hostname))
    for domain in domain_names_active() if ours else []:
        names = [
            f"{prefix}.{domain}"
            for prefix in DOMAIN_PREFIXES
            if f"{prefix}.{domain}" != hostname
            and ours & set(_addresses(dns, f"{prefix}.{domain}"))
        ]
        if names and HOST_NAME.fullmatch(domain):
            wanted[domain] = names
    return wanted


def _addresses(dns, name: str) -> list[str]:  # noqa: ANN001
    try:
        return dns.get_resolver().addresses(name)
    except dns.DNSError:
        return []


def challenge_response(token: str) -> bytes | None:
    """The key authorization for an http-01 token we are being validated on, or None."""
    if not TOKEN.fullmatch(token):
        return None
    try:
        return (directory() / "challenges" / token).read_bytes()
    except OSError:
        return None


def needs_certificate(cert_path: Path, wanted: list[str], now: datetime.datetime) -> str | None:
    """Why a new certificate is needed (a short reason), or None when the one there will do."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return "missing"
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = sorted(n.lower() for n in alt.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        have = []
    if have != sorted(wanted):
        return "names"
    left = cert.not_valid_after_utc - now
    if left < datetime.timedelta(days=settings.MAILHOST_ACME_RENEW_DAYS):
        return "expiring"
    return None


def check_in_thread() -> bool:
    """ensure() from a pool thread (runmail's check): its database connection closed after."""
    from django.db import connections

    try:
        return ensure()
    finally:
        connections.close_all()


def ensure(now: datetime.datetime | None = None) -> bool:
    """Issue or renew what is needed; True when a new certificate was written. When some
    could not be had, the others are still issued and AcmeIncomplete says which failed."""
    now = now or datetime.datetime.now(datetime.UTC)
    directory().mkdir(mode=0o700, parents=True, exist_ok=True)
    issued = False
    failed = []
    with open(directory() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for domain, names in certificate_sets().items():
            try:
                issued |= _ensure_one(domain, names, now)
            except Exception as exc:
                if not domain:
                    raise AcmeIncomplete(str(exc), issued=issued) from exc
                logger.error('acme failed domain=%s error="%s"', domain, exc)
                failed.append(domain)
    if failed:
        raise AcmeIncomplete(f"no certificate for {', '.join(failed)}", issued=issued)
    return issued


def _ensure_one(domain: str, names: list[str], now: datetime.datetime) -> bool:
    cert_path, key_path = certificate_files(domain)
    reason = needs_certificate(cert_path, names, now)
    if reason is None:
        logger.info("acme certificate valid cert=%s names=%s", cert_path, ",".join(names))
        return False
    logger.info("acme requesting certificate names=%s reason=%s", ",".join(names), reason)
    fullchain, key_pem = _order(names)
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(key_path.with_suffix(".new"), key_pem)
    _write(cert_path.with_suffix(".new"), fullchain.encode())
    # The key first: a reload between the two renames fails to load and keeps the old pair.
    os.replace(key_path.with_suffix(".new"), key_path)
    os.replace(cert_path.with_suffix(".new"), cert_path)
    logger.info("acme certificate issued cert=%s names=%s", cert_path, ",".join(names))
    return True


def alpn_challenge_file(name: str) -> Path | None:
    """Where a pending tls-alpn-01 challenge for `name` keeps its certificate and key (one
    PEM file), or None for a name that is no host name (never a path out of the directory)."""
    if not HOST_NAME.fullmatch(name):
        return None
    return directory() / "alpn" / f"{name}.pem"


def alpn_challenge_certificate(name: str, key_authorization: str) -> bytes:
    """RFC 8737 3: a self-signed certificate for `name` alone, with the critical
    acmeIdentifier extension holding SHA-256(key authorization) as a DER OCTET STRING, and
    its key, as PEM (key first)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier(ACME_IDENTIFIER_OID), b"\x04\x20" + digest),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _account_key():
    import josepy as jose
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = directory() / "account.key"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write(path, pem)
    return jose.JWKRSA(key=key)


def _order(wanted: list[str]) -> tuple[str, bytes]:
    from acme import client, crypto_util, errors, messages
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _register_tls_alpn01()  # before the order's challenges are read
    account_key = _account_key()
    net = client.ClientNetwork(
        account_key,
        user_agent="mailhost",
        verify_ssl=settings.MAILHOST_ACME_CA_FILE or True,
    )
    acme = client.ClientV2(
        client.ClientV2.get_directory(settings.MAILHOST_ACME_DIRECTORY, net), net
    )
    registration = messages.NewRegistration.from_data(
        email=settings.MAILHOST_ACME_EMAIL, terms_of_service_agreed=True
    )
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:  # RFC 8555 7.3.1: this key has an account already
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    order = acme.new_order(crypto_util.make_csr(key_pem, wanted))
    written: list[Path] = []
    try:
        for authorization in order.authorizations:
            name = authorization.body.identifier.value
            challenge = _challenge(authorization, settings.MAILHOST_ACME_CHALLENGE)
            key_authorization = challenge.chall.key_authorization(account_key)
            if settings.MAILHOST_ACME_CHALLENGE == "tls-alpn-01":
                path = alpn_challenge_file(name)
                if path is None:
                    raise RuntimeError(f"cannot answer tls-alpn-01 for {name!r}")
                data = alpn_challenge_certificate(name, key_authorization)
            else:
                path = directory() / "challenges" / challenge.chall.encode("token")
                data = key_authorization.encode()
            path.parent.mkdir(mode=0o700, exist_ok=True)
            _write(path, data)
            written.append(path)
            acme.answer_challenge(challenge, challenge.chall.response(account_key))
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=90)
        order = acme.poll_and_finalize(order, deadline)
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    return order.fullchain_pem, key_pem


def _challenge(authorization, kind: str):  # noqa: ANN001, ANN202
    """The authorization's challenge of the kind MAILHOST_ACME_CHALLENGE names."""
    from acme import challenges

    _register_tls_alpn01()
    wanted = challenges.HTTP01 if kind == "http-01" else TlsAlpn01
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, wanted):
            return challenge
    raise RuntimeError(f"no {kind} challenge for {authorization.body.identifier.value}")


TlsAlpn01 = None


def _register_tls_alpn01() -> None:
    """The `acme` package (5.x) dropped its tls-alpn-01 classes: the challenge is an ordinary
    key-authorization one (RFC 8737 3), answered with an empty JSON object like http-01."""
    global TlsAlpn01
    if TlsAlpn01 is not None:
        return
    from acme import challenges

    found = challenges.Challenge.TYPES.get("tls-alpn-01")
    if found is not None:
        TlsAlpn01 = found
        return

    @challenges.ChallengeResponse.register
    class TlsAlpn01Response(challenges.KeyAuthorizationChallengeResponse):
        typ = "tls-alpn-01"

    @challenges.Challenge.register
    class _TlsAlpn01(challenges.KeyAuthorizationChallenge):
        response_cls = TlsAlpn01Response
        typ = "tls-alpn-01"

        def validation(self, account_key, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return self.key_authorization(account_key)

    TlsAlpn01 = _TlsAlpn01

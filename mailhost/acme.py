"""ACME (RFC 8555) certificates for MAILHOST_HOSTNAME: MAILHOST_ACME_DIRECTORY names the CA's
directory, the http-01 challenge (RFC 8555 8.3) is answered by our own web port at
/.well-known/acme-challenge/<token>, and the certificate, its key and the account key live in
DATA_DIR/tls/acme/ (mode 0700). `ensure()` issues when there is no certificate for the names,
or it expires within MAILHOST_ACME_RENEW_DAYS; runmail calls it at start-up and every
MAILHOST_ACME_CHECK_INTERVAL seconds off the event loop, then `tls.reload()` on the loop.
Everything here blocks (HTTP to the CA): never call it on the event loop."""

from __future__ import annotations

import datetime
import fcntl
import logging
import os
import re
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

TOKEN = re.compile(r"[A-Za-z0-9_-]+")  # RFC 8555 8.1: base64url


def directory() -> Path:
    return settings.DATA_DIR / "tls" / "acme"


def certificate_files() -> tuple[Path, Path]:
    return directory() / "cert.pem", directory() / "key.pem"


# Each hosted domain's names clients and other servers reach us by (autoconfig, MTA-STS).
DOMAIN_PREFIXES = ("mail", "autoconfig", "mta-sts")


def names() -> list[str]:
    """MAILHOST_HOSTNAME, then with MAILHOST_ACME_DOMAIN_NAMES each active hosted domain's
    mail., autoconfig. and mta-sts. names that resolve (MAILHOST_DNS_SERVERS) to an address
    of MAILHOST_HOSTNAME: a name that does not would fail the CA's validation and with it the
    whole order."""
    from delivery import dns
    from mailboxes.selectors import domain_names_active

    hostname = settings.MAILHOST_HOSTNAME.lower()
    wanted = [hostname]
    if not settings.MAILHOST_ACME_DOMAIN_NAMES:
        return wanted
    ours = set(_addresses(dns, hostname))
    for domain in domain_names_active() if ours else []:
        for prefix in DOMAIN_PREFIXES:
            name = f"{prefix}.{domain}"
            if name not in wanted and ours & set(_addresses(dns, name)):
                wanted.append(name)
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
    """Issue or renew when needed; True when a new certificate was written."""
    now = now or datetime.datetime.now(datetime.UTC)
    cert_path, key_path = certificate_files()
    directory().mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reason = needs_certificate(cert_path, names(), now)
        if reason is None:
            logger.info("acme certificate valid cert=%s names=%s", cert_path, ",".join(names()))
            return False
        logger.info("acme requesting certificate names=%s reason=%s", ",".join(names()), reason)
        fullchain, key_pem = _order(names())
        _write(key_path.with_suffix(".new"), key_pem)
        _write(cert_path.with_suffix(".new"), fullchain.encode())
        # The key first: a reload between the two renames fails to load and keeps the old pair.
        os.replace(key_path.with_suffix(".new"), key_path)
        os.replace(cert_path.with_suffix(".new"), cert_path)
    logger.info("acme certificate issued cert=%s names=%s", cert_path, ",".join(names()))
    return True


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
    from acme import challenges, client, crypto_util, errors, messages
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

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
    tokens = directory() / "challenges"
    tokens.mkdir(mode=0o700, exist_ok=True)
    written = []
    try:
        for authorization in order.authorizations:
            for challenge in authorization.body.challenges:
                if isinstance(challenge.chall, challenges.HTTP01):
                    response, validation = challenge.response_and_validation(account_key)
                    path = tokens / challenge.chall.encode("token")
                    _write(path, validation.encode())
                    written.append(path)
                    acme.answer_challenge(challenge, response)
                    break
            else:
                raise RuntimeError(f"no http-01 challenge for {authorization.body.identifier}")
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=90)
        order = acme.poll_and_finalize(order, deadline)
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    return order.fullchain_pem, key_pem

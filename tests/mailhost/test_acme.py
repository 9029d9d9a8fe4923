"""Renewal rule of mailhost/acme.py (issue 18) with a fake clock: a certificate is asked for
when there is none, when its names are not MAILHOST_HOSTNAME, or when it expires within
MAILHOST_ACME_RENEW_DAYS; otherwise the one on disk is kept. The exchange with the CA is
tests/protocols/test_acme_pebble.py's."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from delivery import dns
from mailboxes.services import domain_create
from mailhost import acme

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


def make_certificate(name: str, days: int) -> tuple[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@pytest.fixture
def orders(settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path
    settings.MAILHOST_HOSTNAME = "mx.example.org"
    settings.MAILHOST_ACME_RENEW_DAYS = 30
    settings.MAILHOST_ACME_DOMAIN_NAMES = False
    asked: list[list[str]] = []

    def order(names):
        asked.append(names)
        return make_certificate(names[0], 90)

    monkeypatch.setattr(acme, "_order", order)
    return asked


def install(name: str, days: int) -> None:
    cert, key = acme.certificate_files()
    cert.parent.mkdir(parents=True, exist_ok=True)
    pem, key_pem = make_certificate(name, days)
    cert.write_text(pem)
    key.write_bytes(key_pem)


def test_no_certificate_is_issued(orders):
    assert acme.ensure(NOW) is True
    assert orders == [["mx.example.org"]]
    cert, key = acme.certificate_files()
    assert acme.needs_certificate(cert, ["mx.example.org"], NOW) is None
    assert key.stat().st_mode & 0o777 == 0o600
    assert cert.parent.stat().st_mode & 0o777 == 0o700


def test_valid_for_more_than_renew_days_is_kept(orders):
    install("mx.example.org", 31)
    assert acme.ensure(NOW) is False
    assert orders == []


def test_expiring_within_renew_days_is_renewed(orders):
    install("mx.example.org", 31)
    # The same certificate, 2 days later: 29 days left.
    assert acme.ensure(NOW + datetime.timedelta(days=2)) is True
    assert orders == [["mx.example.org"]]
    cert, _ = acme.certificate_files()
    left = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc - NOW
    assert left > datetime.timedelta(days=80)


def test_other_names_are_replaced(orders):
    install("old.example.org", 80)
    assert acme.needs_certificate(acme.certificate_files()[0], ["mx.example.org"], NOW) == "names"
    assert acme.ensure(NOW) is True
    assert orders == [["mx.example.org"]]


def test_challenge_tokens_are_base64url_only(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    tokens = acme.directory() / "challenges"
    tokens.mkdir(parents=True)
    (tokens / "abc-_123").write_bytes(b"abc-_123.thumbprint")
    assert acme.challenge_response("abc-_123") == b"abc-_123.thumbprint"
    assert acme.challenge_response("missing") is None
    assert acme.challenge_response("../acme/account.key") is None


@pytest.mark.django_db
def test_each_domain_gets_a_certificate_of_its_names_that_resolve_to_us(settings):
    settings.MAILHOST_HOSTNAME = "mx.example.net"
    settings.MAILHOST_ACME_DOMAIN_NAMES = True
    domain_create(name="example.org")
    domain_create(name="example.com")
    domain_create(name="gone.example", active=False)
    hosts = {
        "mx.example.net": ["192.0.2.1", "2001:db8::1"],
        "mail.example.org": ["192.0.2.1"],
        "autoconfig.example.org": ["2001:db8::1"],
        "mta-sts.example.org": ["198.51.100.7"],  # somebody else's: left out
        "mail.example.com": ["192.0.2.1"],
        "mail.gone.example": ["192.0.2.1"],  # not active
    }
    dns.set_resolver(dns.MemoryResolver(hosts=hosts, failing={"autoconfig.example.com"}))
    try:
        assert acme.certificate_sets() == {
            "": ["mx.example.net"],
            "example.com": ["mail.example.com"],
            "example.org": ["mail.example.org", "autoconfig.example.org"],
        }
        settings.MAILHOST_ACME_DOMAIN_NAMES = False
        assert acme.certificate_sets() == {"": ["mx.example.net"]}
    finally:
        dns.set_resolver(None)


@pytest.mark.django_db
def test_domain_certificates_are_ordered_apart_and_one_failing_spares_the_others(
    orders, settings, monkeypatch
):
    settings.MAILHOST_ACME_DOMAIN_NAMES = True
    for name in ("example.com", "example.net", "example.org"):
        domain_create(name=name)
    hosts = {
        "mx.example.org": ["192.0.2.1"],
        "mail.example.com": ["192.0.2.1"],
        "mail.example.net": ["192.0.2.1"],
        "autoconfig.example.org": ["192.0.2.1"],
    }
    dns.set_resolver(dns.MemoryResolver(hosts=hosts))
    issue = acme._order

    def order(names):
        if names == ["mail.example.net"]:
            raise RuntimeError("urn:ietf:params:acme:error:dns")
        return issue(names)

    monkeypatch.setattr(acme, "_order", order)
    try:
        with pytest.raises(acme.AcmeIncomplete, match="example.net") as failed:
            acme.ensure(NOW)
        assert failed.value.issued is True
        assert orders == [["mx.example.org"], ["mail.example.com"], ["autoconfig.example.org"]]
        assert [cert.parent.name for cert, _ in acme.domain_certificate_files()] == [
            "example.com",
            "example.org",
        ]
        for _cert, key in acme.domain_certificate_files():
            assert key.stat().st_mode & 0o777 == 0o600
        # Next check: only what failed is asked for again.
        monkeypatch.setattr(acme, "_order", issue)
        assert acme.ensure(NOW) is True
        assert orders[3:] == [["mail.example.net"]]
        assert acme.ensure(NOW) is False
    finally:
        dns.set_resolver(None)


def test_alpn_challenge_certificate_carries_the_key_authorization_digest(settings, tmp_path):
    """RFC 8737 3: SAN the one name, critical acmeIdentifier = OCTET STRING(SHA-256(keyauth))."""
    import hashlib

    settings.DATA_DIR = tmp_path
    pem = acme.alpn_challenge_certificate("mail.example.org", "token.thumbprint")
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mail.example.org"]
    extension = cert.extensions.get_extension_for_oid(
        x509.ObjectIdentifier(acme.ACME_IDENTIFIER_OID)
    )
    assert extension.critical
    assert extension.value.value == b"\x04\x20" + hashlib.sha256(b"token.thumbprint").digest()
    assert acme.alpn_challenge_file("mail.example.org") == (
        tmp_path / "tls" / "acme" / "alpn" / "mail.example.org.pem"
    )
    assert acme.alpn_challenge_file("../account.key") is None
    assert acme.alpn_challenge_file("Mail.Example.org/x") is None

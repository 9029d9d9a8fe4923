"""DKIM signing: a signed message verifies against the key the domain publishes."""

from __future__ import annotations

import dkim
import dns.rdata
import pytest

from delivery.dkim import dkim_public_key_value, dkim_sign, dkim_txt_record

pytestmark = pytest.mark.django_db

RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@remote.test\r\n"
    b"Subject: hello\r\n"
    b"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"\r\n"
    b"Hi Bob.\r\n"
)


def _dnsfunc(domain):
    def lookup(name, timeout=5):
        if name == f"{domain.dkim_selector}._domainkey.{domain.name}.".encode():
            return dkim_public_key_value(domain).encode()
        return None

    return lookup


def test_signed_message_verifies(make_domain):
    domain = make_domain("example.org")
    signed = dkim_sign(RAW, mail_from="alice@example.org")
    assert signed.startswith(b"DKIM-Signature:")
    assert signed.endswith(RAW)
    assert b"d=example.org" in signed and b"s=mailhost" in signed
    assert b"c=relaxed/relaxed" in signed
    assert dkim.verify(signed, dnsfunc=_dnsfunc(domain))


def test_tampered_body_fails(make_domain):
    domain = make_domain("example.org")
    signed = dkim_sign(RAW, mail_from="alice@example.org")
    assert not dkim.verify(signed.replace(b"Hi Bob", b"Hi Eve"), dnsfunc=_dnsfunc(domain))


def test_envelope_domain_signs_when_from_is_foreign(make_domain):
    domain = make_domain("example.org")
    raw = RAW.replace(b"alice@example.org>", b"alice@elsewhere.test>")
    signed = dkim_sign(raw, mail_from="alice@example.org")
    assert b"d=example.org" in signed
    assert dkim.verify(signed, dnsfunc=_dnsfunc(domain))


def test_foreign_mail_passes_unsigned(make_domain):
    make_domain("example.org")
    raw = RAW.replace(b"alice@example.org>", b"alice@elsewhere.test>")
    assert dkim_sign(raw, mail_from="x@elsewhere.test") is raw
    assert dkim_sign(raw, mail_from="") is raw


def test_txt_record_names_selector(make_domain):
    domain = make_domain("example.org")
    record = dkim_txt_record(domain)
    assert record.startswith("mailhost._domainkey.example.org. IN TXT")
    # A zone file takes strings of at most 255 octets: the key's value is split.
    rdata = dns.rdata.from_text("IN", "TXT", record.split(" IN TXT ", 1)[1])
    assert all(len(s) <= 255 for s in rdata.strings)
    assert b"".join(rdata.strings).decode() == dkim_public_key_value(domain)


def test_the_signing_key_is_read_once_not_per_message(make_domain, django_assert_num_queries):
    make_domain("example.org")
    dkim_sign(RAW, mail_from="alice@example.org")
    with django_assert_num_queries(0):
        signed = dkim_sign(RAW, mail_from="alice@example.org")
    assert b"d=example.org" in signed


def test_a_key_activated_or_a_domain_deactivated_signs_at_once(make_domain):
    from mailboxes.services import dkim_key_activate, dkim_key_create

    domain = make_domain("example.org")
    assert b"s=mailhost" in dkim_sign(RAW, mail_from="alice@example.org")  # now cached
    key = dkim_key_create(domain=domain, selector="next")
    assert b"s=mailhost" in dkim_sign(RAW, mail_from="alice@example.org")
    dkim_key_activate(domain=domain, selector=key.selector)
    assert b"s=next;" in dkim_sign(RAW, mail_from="alice@example.org")
    domain.active = False
    domain.save()
    assert dkim_sign(RAW, mail_from="alice@example.org") == RAW


def test_a_cached_key_is_read_again_after_its_time(make_domain, monkeypatch):
    from types import SimpleNamespace

    from delivery import dkim as signing
    from mailboxes.models import Domain
    from mailhost import expiring

    make_domain("example.org")
    assert b"d=example.org" in dkim_sign(RAW, mail_from="alice@example.org")
    Domain.objects.filter(name="example.org").update(active=False)  # no signal: another process
    assert b"d=example.org" in dkim_sign(RAW, mail_from="alice@example.org")
    clock = expiring.time.monotonic() + signing.KEY_CACHE_SECONDS + 1
    monkeypatch.setattr(expiring, "time", SimpleNamespace(monotonic=lambda: clock))
    assert dkim_sign(RAW, mail_from="alice@example.org") == RAW


def test_a_header_that_starts_folded_is_returned_unsigned_not_an_index_error(make_domain):
    """RFC 5322 2.2.3: a continuation line first continues no field; dkimpy's parser raised
    IndexError on it. Submission refuses such a message (550 5.6.0) before it signs;
    the other callers (notices, reports) get the message back unsigned."""
    make_domain("example.org")
    for fold in (b" ", b"\t"):
        raw = fold + b"continued\r\nFrom: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
        assert dkim_sign(raw, mail_from="a@example.org") == raw

"""DKIM (RFC 6376) and ARC (RFC 8617) on port 25's checks, against keys in the local DNS."""

from __future__ import annotations

import pytest

from delivery.inbound import authenticate
from tests.support.dkimkeys import arc_seal, publish, sign

CLIENT = "192.0.2.10"
MESSAGE = (
    b"From: Jane <jane@origin.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: the quarterly figures\r\n"
    b"Date: Thu, 03 Dec 2026 05:00:00 +0000\r\n"
    b"Message-ID: <1@origin.test>\r\n"
    b"\r\n"
    b"Numbers as promised.\r\n"
)


@pytest.fixture
def zone(dns_server, settings):
    settings.MAILHOST_HOSTNAME = "mx.receiver.test"
    settings.MAILHOST_ARC_TRUSTED_SEALERS = ()
    return dns_server


def check(raw: bytes, *, client_ip: str = CLIENT, mail_from: str = "jane@origin.test"):
    return authenticate(raw=raw, client_ip=client_ip, helo="mail.origin.test", mail_from=mail_from)


def test_a_signed_message_verifies(zone):
    publish(zone, "origin.test")
    got = check(sign(MESSAGE, "origin.test"))
    [sig] = got.dkim
    assert (sig.result, sig.domain, sig.selector) == ("pass", "origin.test", "sel")
    assert "dkim=pass header.d=origin.test header.s=sel header.b=" in got.header_value()


def test_a_message_altered_in_transit_fails(zone):
    publish(zone, "origin.test")
    signed = sign(MESSAGE, "origin.test")
    altered = signed.replace(b"Numbers as promised.", b"Send the money to me.")
    [sig] = check(altered).dkim
    assert sig.result == "fail"
    resubjected = signed.replace(b"the quarterly figures", b"URGENT")
    assert check(resubjected).dkim[0].result == "fail"
    assert ("DKIM_FAIL",) == tuple(c for c, _ in check(altered).reasons() if c == "DKIM_FAIL")


def test_every_signature_gets_its_own_result(zone):
    publish(zone, "origin.test")
    publish(zone, "esp.test", selector="s2", key="esp")
    twice = sign(sign(MESSAGE, "origin.test"), "esp.test", selector="s2", key="esp")
    results = [(d.domain, d.result) for d in check(twice).dkim]
    assert results == [("esp.test", "pass"), ("origin.test", "pass")]
    # A signature whose key is not published, and one whose key is another's.
    zone.add_txt("s3._domainkey.wrong.test", publish(zone, "x.test", key="other").txt)
    thrice = sign(sign(MESSAGE, "nokey.test", selector="s9"), "wrong.test", selector="s3")
    assert [d.result for d in check(thrice).dkim] == ["fail", "permerror"]


def test_a_key_lookup_that_fails_is_a_temperror(zone):
    zone.servfail.add("sel._domainkey.origin.test")
    got = check(sign(MESSAGE, "origin.test"))
    assert got.dkim[0].result == "temperror"


def test_unsigned_mail_has_dkim_none(zone):
    got = check(MESSAGE)
    assert got.dkim == ()
    assert "dkim=none" in got.header_value()


# --- ARC ----------------------------------------------------------------------------------


def forwarded_through_list(zone) -> bytes:
    """jane@origin.test writes to a list at lists.test, which checks her mail (DKIM pass),
    records that in its Authentication-Results, tags the Subject (breaking the signature)
    and seals the result (ARC) before passing it on to us."""
    publish(zone, "origin.test")
    publish(zone, "lists.test", selector="arc", key="lists")
    signed = sign(MESSAGE, "origin.test")
    seen = (
        b"Authentication-Results: lists.test; dkim=pass header.d=origin.test;"
        b" spf=pass smtp.mailfrom=jane@origin.test; dmarc=pass header.from=origin.test\r\n"
    )
    tagged = signed.replace(b"Subject: the", b"Subject: [team] the")
    return arc_seal(seen + tagged, "lists.test", "lists.test", selector="arc", key="lists")


def test_an_arc_sealed_forwarded_message(zone):
    got = check(forwarded_through_list(zone), mail_from="team-bounces@lists.test")
    assert got.arc.result == "pass"
    assert got.arc.sealers == ("lists.test",) and got.arc.instances == 1
    assert ("dmarc", "pass") in got.arc.sealed_results
    assert got.dkim[0].result == "fail"  # the list changed the Subject
    assert "arc=pass (i=1 lists.test)" in got.header_value()


def test_an_arc_chain_altered_after_sealing_fails(zone):
    sealed = forwarded_through_list(zone)
    altered = sealed.replace(b"Numbers as promised.", b"Numbers as changed.")
    assert check(altered, mail_from="team-bounces@lists.test").arc.result == "fail"


def test_a_second_hop_extends_the_chain(zone):
    publish(zone, "relay.test", selector="arc", key="relay")
    once = forwarded_through_list(zone)
    seen = b"Authentication-Results: relay.test; arc=pass; dkim=fail\r\n"
    twice = arc_seal(seen + once, "relay.test", "relay.test", selector="arc", key="relay")
    got = check(twice, mail_from="x@relay.test")
    assert got.arc.result == "pass"
    assert got.arc.sealers == ("relay.test", "lists.test")


def test_openssl_rsa_check_agrees_with_dkimpys_own():
    # delivery.inbound.rsaverify replaces dkimpy's pure-Python RSA check for speed: both
    # must say the same of a good signature, a bad one, and one of another message.
    import hashlib

    import dkim
    from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key

    from delivery.inbound import rsaverify
    from tests.support.dkimkeys import signing_key

    private = parse_pem_private_key(signing_key().pem)
    public = {"modulus": private["modulus"], "publicExponent": private["publicExponent"]}
    signature = bytes(RSASSA_PKCS1_v1_5_sign(hashlib.sha256(b"message"), private))
    other = hashlib.sha256(b"another message")
    for digest, sig, expected in [
        (hashlib.sha256(b"message"), signature, True),
        (hashlib.sha256(b"message"), signature[:-1] + bytes([signature[-1] ^ 1]), False),
        (other, signature, False),
        (hashlib.sha256(b"message"), signature[1:], False),
    ]:
        ours = rsaverify.rsassa_pkcs1_v1_5_verify(digest.copy(), sig, public)
        theirs = rsaverify._pure_python(digest.copy(), sig, public)
        assert ours == theirs == expected
    assert dkim.RSASSA_PKCS1_v1_5_verify is rsaverify.rsassa_pkcs1_v1_5_verify


def test_openssl_rsa_signature_is_dkimpys_own():
    # PKCS#1 v1.5 signatures are deterministic: OpenSSL's (delivery.inbound.rsaverify, what
    # DKIM signing and ARC sealing use) must be byte for byte dkimpy's pure-Python one.
    import hashlib

    import dkim
    from dkim.crypto import parse_pem_private_key

    import delivery.dkim  # noqa: F401  (installs the OpenSSL signer)
    from delivery.inbound import rsaverify
    from tests.support.dkimkeys import signing_key

    private = parse_pem_private_key(signing_key().pem)
    for text in (b"message", b"", b"another message" * 100):
        ours = rsaverify.rsassa_pkcs1_v1_5_sign(hashlib.sha256(text), private)
        theirs = rsaverify._pure_python_sign(hashlib.sha256(text), private)
        assert bytes(ours) == bytes(theirs)
    assert dkim.RSASSA_PKCS1_v1_5_sign is rsaverify.rsassa_pkcs1_v1_5_sign


def test_a_signing_key_is_parsed_once():
    # dkimpy parses the PEM key of every signature in pure Python; rsaverify keeps each key's
    # parse (dkimpy only reads it), equal to a fresh one.
    import dkim

    import delivery.dkim  # noqa: F401  (installs the cached parse)
    from delivery.inbound import rsaverify
    from tests.support.dkimkeys import signing_key

    pem = signing_key().pem
    raw = b"From: a@example.org\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nbody\r\n"
    rsaverify.parse_pem_private_key.cache_clear()
    for _ in range(3):
        dkim.sign(raw, b"s1", b"example.org", pem, include_headers=[b"from"])
    assert rsaverify.parse_pem_private_key.cache_info().misses == 1
    assert rsaverify.parse_pem_private_key(pem) == rsaverify._parse_pem(pem)

"""delivery.dkimrelaxed against dkimpy: the same DKIM-Signature field, byte for byte, on many
random messages (folded and repeated fields, tabs and runs of spaces, trailing whitespace and
empty lines, empty bodies), verified by dkimpy and by port 25's inbound checks."""

from __future__ import annotations

import random
import time

import dkim
import pytest

from delivery import dkim as signing
from delivery.dkim import dkim_public_key_value, dkim_sign
from delivery.dkimrelaxed import relaxed_rsa_sha256
from delivery.inbound import authenticate
from tests.support.dkimkeys import publish, signing_key

NOW = 1764800000.5

NAMES = [
    b"From", b"from", b"FROM", b"To", b"Cc", b"Subject", b"subject", b"Date", b"Message-ID",
    b"Reply-To", b"MIME-Version", b"Content-Type", b"Content-Transfer-Encoding", b"Received",
    b"X-Mailer", b"List-Id", b"References", b"In-Reply-To", b"Sender", b"Keywords",
]  # fmt: skip
WORDS = [b"a", b"Hello", b"<x@example.org>", b"=?utf-8?q?caf=C3=A9?=", b";", b"\xc3\xa9", b"\r"]
SPACES = [b" ", b" ", b" ", b"  ", b"\t", b" \t ", b""]


def _text(rng: random.Random, count: int) -> bytes:
    return b"".join(rng.choice(WORDS) + rng.choice(SPACES) for _ in range(count))


def random_message(rng: random.Random) -> bytes:
    fields = [b"From:" + rng.choice(SPACES) + b"<alice@example.org>" + rng.choice(SPACES)]
    for _ in range(rng.randrange(0, 12)):
        field = rng.choice(NAMES) + rng.choice([b":", b": ", b":\t", b":  "]) + _text(rng, 4)
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            field += b"\r\n" + rng.choice([b" ", b"\t", b"   "]) + _text(rng, 3)
        fields.insert(rng.randrange(0, len(fields) + 1), field)
    lines = [_text(rng, rng.randrange(0, 12)) for _ in range(rng.randrange(0, 8))]
    lines += [rng.choice([b"", b" ", b"\t"]) for _ in range(rng.choice([0, 0, 1, 3]))]
    body = b"\r\n".join(lines) + rng.choice([b"\r\n", b"\r\n", b"", b"\r\n\r\n"])
    return b"\r\n".join(fields) + b"\r\n\r\n" + body


def dkimpy(raw: bytes) -> bytes:
    return dkim.sign(
        raw,
        b"sel",
        b"example.org",
        signing_key("default").pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=None,
    )


def ours(raw: bytes) -> bytes | None:
    return relaxed_rsa_sha256(
        raw, selector=b"sel", domain=b"example.org", pem=signing_key("default").pem.decode("ascii")
    )


def lookup(name: bytes, timeout: float = 5) -> bytes | None:
    return signing_key("default").txt.encode() if name == b"sel._domainkey.example.org." else None


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: NOW)


def test_the_signature_is_dkimpys_on_random_messages(frozen_clock):
    rng = random.Random(6376)
    for _ in range(400):
        raw = random_message(rng)
        signature = ours(raw)
        assert signature == dkimpy(raw), raw
        assert dkim.verify(signature + raw, dnsfunc=lookup), raw


def test_the_signature_is_dkimpys_for_any_selector_domain_and_time(monkeypatch):
    """The b= placeholder is cut off the unsigned field by a slice, not by dkimpy's RE_BTAG
    (tried at every octet: 16 us a message); the field is dkimpy's wherever the folding puts
    the placeholder: selectors and domains of every length (a label of 63, a name of 253),
    times of any width."""
    calls = []
    real = dkim.RE_BTAG

    class Counting:
        def __getattr__(self, name: str):  # noqa: ANN204
            calls.append(name)
            return getattr(real, name)

    rng = random.Random(8463)
    raw = random_message(rng)
    for _ in range(300):
        labels = [
            bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(size))
            for size in rng.choice([[1], [7, 3], [63, 63, 63, 61], [rng.randrange(1, 64)] * 3])
        ]
        domain = b".".join(
            b"a" + label[1:-1] + b"z" if len(label) > 1 else b"a" for label in labels
        )
        selector = b"s" * rng.randrange(1, 64)
        now = rng.choice([0, 9, 1764800000, 99999999999])
        monkeypatch.setattr(time, "time", lambda now=now: now)
        key = signing_key("default").pem
        expected = dkim.sign(
            raw, selector, domain, key, canonicalize=(b"relaxed", b"relaxed"), include_headers=None
        )
        monkeypatch.setattr(dkim, "RE_BTAG", Counting())
        signature = relaxed_rsa_sha256(raw, selector=selector, domain=domain, pem=key.decode())
        monkeypatch.setattr(dkim, "RE_BTAG", real)
        assert signature == expected, (selector, domain, now)
    assert calls == []


def test_only_the_signed_fields_are_canonicalized(monkeypatch, frozen_clock):
    """A field that is not signed (trace fields: our Received on every submission, with its
    tabs) is never unfolded and canonicalized: the signed ones (From, Subject) and the
    signature field only (before: every field of the header)."""
    from delivery import dkimrelaxed

    values = []
    real = dkimrelaxed._relaxed_value
    monkeypatch.setattr(
        dkimrelaxed, "_relaxed_value", lambda parts: values.append(parts[0][:9]) or real(parts)
    )
    raw = (
        b"Received: from a ([192.0.2.1])\r\n\tby b with ESMTPSA id X;\r\n\tFri, 4 Dec 2026\r\n"
        b"X-Mailer:  two  spaces\r\nFrom: <alice@example.org>\r\nSubject: s\r\n\r\nbody\r\n"
    )
    assert ours(raw) == dkimpy(raw)
    assert values == [b" <alice@e", b" s", b"v=1; a=rs"]


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.org\nSubject: bare LF\n\nbody\n",
        b"From: a@example.org\r\nSubject: one bare LF\r\n\r\nbody\nmore\r\n",
        b"From a@example.org Thu Dec  3 05:00:00 2026\r\nFrom: a@example.org\r\n\r\nbody\r\n",
        b"From: a@example.org\r\nnot a field\r\n\r\nbody\r\n",
        b"From: a@example.org\r\n",  # no body
        b"\r\nFrom: a@example.org\r\n\r\nbody\r\n",
    ],
)
def test_what_dkimpy_reads_its_own_way_is_left_to_it(raw, frozen_clock, make_domain):
    assert ours(raw) is None
    make_domain("example.org")
    signed = dkim_sign(raw, mail_from="a@example.org")
    key = signing._keys.get("example.org")
    try:
        expected = dkim.sign(
            raw.replace(b"\n", b"\r\n") if b"\r\n" not in raw else raw,
            key.selector.encode(),
            b"example.org",
            key.private_key.encode(),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=None,
        )
    except dkim.DKIMException:
        assert signed == raw  # unsigned, as before
        return
    if b"\r\n" not in raw:
        expected = expected.replace(b"\r\n", b"\n")
    assert signed == expected + raw


def test_a_continuation_line_first_is_left_to_dkimpy():
    assert ours(b" continued first\r\nFrom: a@example.org\r\n\r\nbody\r\n") is None


def test_without_a_from_field_nothing_is_signed(make_domain):
    make_domain("example.org")
    raw = b"Subject: no From\r\n\r\nbody\r\n"
    assert ours(raw) is None
    assert dkim_sign(raw, mail_from="a@example.org") == raw  # dkimpy refuses, as before


@pytest.mark.django_db
def test_dkim_sign_does_not_call_dkimpy_for_a_common_message(make_domain, monkeypatch, settings):
    domain = make_domain("example.org")
    raw = random_message(random.Random(1))

    def refused(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("dkimpy signed")

    monkeypatch.setattr(signing.dkim, "sign", refused)
    signed = dkim_sign(raw, mail_from="alice@example.org")
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")

    def key_of(name: bytes, timeout: float = 5) -> bytes | None:
        wanted = f"{domain.dkim_selector}._domainkey.example.org.".encode()
        return dkim_public_key_value(domain).encode() if name == wanted else None

    assert dkim.verify(signed, dnsfunc=key_of)


def test_port_25s_checks_pass_our_signatures(dns_server, settings):
    settings.MAILHOST_HOSTNAME = "mx.receiver.test"
    settings.MAILHOST_ARC_TRUSTED_SEALERS = ()
    publish(dns_server, "example.org")
    rng = random.Random(8617)
    for _ in range(25):
        raw = random_message(rng)
        got = authenticate(
            raw=ours(raw) + raw,
            client_ip="192.0.2.10",
            helo="mail.example.org",
            mail_from="alice@example.org",
        )
        assert [(d.result, d.domain) for d in got.dkim] == [("pass", "example.org")], raw


@pytest.mark.parametrize("bits", [1024, 3072])
def test_the_signature_is_dkimpys_for_other_key_sizes(bits, frozen_clock):
    """The signed field's b= lines are cut here, not by a second dkim.fold: as dkimpy cuts
    them whatever the signature's length."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    rng = random.Random(bits)
    for _ in range(20):
        raw = random_message(rng)
        expected = dkim.sign(
            raw, b"sel", b"example.org", pem, canonicalize=(b"relaxed", b"relaxed"),
            include_headers=None,
        )  # fmt: skip
        signed = relaxed_rsa_sha256(raw, selector=b"sel", domain=b"example.org", pem=pem.decode())
        assert signed == expected, raw

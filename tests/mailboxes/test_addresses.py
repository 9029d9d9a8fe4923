"""parse_address and domain_to_ascii: IDNA 2008 domains, UTF-8 local parts."""

from __future__ import annotations

import pytest

from mailboxes.addresses import Address, domain_to_ascii, domain_to_unicode, parse_address
from mailboxes.exceptions import InvalidAddress


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Example.ORG", "example.org"),
        ("example.org.", "example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.Example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: not strasse.de
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ],
)
def test_domain_to_ascii(text, expected):
    assert domain_to_ascii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "a..b",
        "-a.example",
        "a-.example",
        "a_b.example",
        "☃.example",
        "x" * 64 + ".org",
        "xn--zz-.example",
        "ex ample.org",
    ],
)
def test_domain_to_ascii_refuses(text):
    with pytest.raises(InvalidAddress):
        domain_to_ascii(text)


def test_domain_to_unicode():
    assert domain_to_unicode("xn--bcher-kva.example") == "bücher.example"
    assert domain_to_unicode("xn--strae-oqa.de") == "straße.de"
    assert domain_to_unicode("example.org") == "example.org"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("alice@example.org", Address("alice", "example.org")),
        ("<Alice@Example.org>", Address("Alice", "example.org")),
        ("jörg@bücher.example", Address("jörg", "xn--bcher-kva.example")),
        ('"john doe"@example.org', Address("john doe", "example.org")),
        ("a+tag@example.org", Address("a+tag", "example.org")),
        ("user@sub.example.org", Address("user", "sub.example.org")),
    ],
)
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "@example.org",
        "alice@",
        "a b@example.org",
        ".a@example.org",
        "a.@example.org",
        "a..b@example.org",
        "a<b@example.org",
        "x" * 65 + "@example.org",
        "ü" * 33 + "@example.org",
        '"a\\b"@example.org',
        "alice@bad_domain.example",
    ],
)
def test_parse_address_refuses(text):
    with pytest.raises(InvalidAddress):
        parse_address(text)


def test_a_parse_kept_for_its_text_is_the_same_and_a_refusal_is_not_kept():
    # parse_address keeps its last answers (port 25 parses each address several times).
    assert parse_address("Kept@Example.ORG") == Address("Kept", "example.org")
    assert parse_address("Kept@Example.ORG") == Address("Kept", "example.org")
    for _ in range(2):
        with pytest.raises(InvalidAddress):
            parse_address("not an address")

"""protocols.common.sasl, the one SASL reading of every front end: base64 and its empty
response, cancel, PLAIN's three fields (RFC 4616 2) and LOGIN's two prompts."""

from __future__ import annotations

import base64

import pytest

from protocols.common import sasl


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_plain_with_initial_response():
    exchange = sasl.Exchange("PLAIN", b64(b"\0alice@example.org\0secret"))
    assert exchange.start() == sasl.Credentials("alice@example.org", "secret")


def test_plain_with_authzid_and_utf8():
    exchange = sasl.Exchange("PLAIN", b64("bob@example.org\0ålice@example.org\0pässword".encode()))
    assert exchange.start() == sasl.Credentials(
        authcid="ålice@example.org", password="pässword", authzid="bob@example.org"
    )


def test_plain_without_initial_response_asks_with_an_empty_challenge():
    exchange = sasl.Exchange("PLAIN")
    assert exchange.start() == sasl.Challenge(b"")
    assert exchange.respond(b64(b"\0alice@example.org\0secret") + "\r\n").password == "secret"


def test_login_prompts_for_user_then_password():
    exchange = sasl.Exchange("LOGIN")
    assert exchange.start() == sasl.Challenge(b"Username:")
    assert exchange.respond(b64(b"alice@example.org")) == sasl.Challenge(b"Password:")
    assert exchange.respond(b64(b"secret").encode()) == sasl.Credentials(
        "alice@example.org", "secret"
    )


def test_login_initial_response_is_the_user_name():
    exchange = sasl.Exchange("LOGIN", b64(b"alice@example.org"))
    assert exchange.start() == sasl.Challenge(b"Password:")
    assert exchange.respond(b64(b"secret")) == sasl.Credentials("alice@example.org", "secret")


@pytest.mark.parametrize("empty", ["=", "", b"=", b""])
def test_equals_and_nothing_are_the_empty_response(empty):
    assert sasl.decode(empty) == b""
    # An empty PLAIN message has none of its three fields.
    with pytest.raises(sasl.Malformed):
        sasl.Exchange("PLAIN", empty).start()
    # LOGIN: an empty user name is a user name (the login then fails, it is not malformed).
    exchange = sasl.Exchange("LOGIN")
    exchange.start()
    assert exchange.respond(empty) == sasl.Challenge(b"Password:")


@pytest.mark.parametrize("text", ["not base64!", "YWxp Y2U=", "YWxpY2U", "*", "==", "Y"])
def test_what_is_not_base64(text):
    with pytest.raises(sasl.NotBase64):
        sasl.decode(text)
    with pytest.raises(sasl.NotBase64):
        sasl.Exchange("PLAIN", text).start()


@pytest.mark.parametrize("message", [b"alice\0secret", b"\0a\0b\0c", b"secret", b"\0\xff\0pw"])
def test_malformed_plain_messages(message):
    with pytest.raises(sasl.Malformed) as raised:
        sasl.Exchange("PLAIN", b64(message)).start()
    assert not isinstance(raised.value, sasl.NotBase64)


def test_login_answers_must_be_utf8():
    exchange = sasl.Exchange("LOGIN")
    exchange.start()
    exchange.respond(b64(b"alice@example.org"))
    with pytest.raises(sasl.Malformed):
        exchange.respond(b64(b"\xff\xfe"))


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_star_answering_a_challenge_cancels(mechanism):
    exchange = sasl.Exchange(mechanism)
    exchange.start()
    with pytest.raises(sasl.Cancelled):
        exchange.respond("*")
    with pytest.raises(sasl.Cancelled):
        sasl.Exchange(mechanism).respond(b"*\r\n")


def test_other_mechanisms_are_the_callers_to_refuse():
    with pytest.raises(ValueError):
        sasl.Exchange("CRAM-MD5")

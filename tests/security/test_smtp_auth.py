"""AUTH over SMTP: never before TLS, never during a transaction, slowed down when guessed."""

from __future__ import annotations

import base64
import time

import pytest

from mailboxes import throttle
from protocols.smtp import replies
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\x00{user}\x00{password}".encode()).decode()


def secured(port: int) -> Transcript:
    client = Transcript(port)
    client.secure()
    return client


def test_auth_before_starttls_is_refused_and_not_checked(smtp_ports, hosted):
    client = Transcript(smtp_ports["submission"])
    assert not any("AUTH" in line for line in client.ehlo())
    client.command(
        f"AUTH PLAIN {plain('alice@example.org', 'secret')}", replies.S530_STARTTLS_FIRST
    )
    client.command("AUTH LOGIN", replies.S530_STARTTLS_FIRST)
    client.close()
    # The credentials never reached the password check: no failure was counted either.
    assert throttle.wait_for("alice@example.org", "127.0.0.1") == 0


def test_plaintext_injection_after_starttls_is_discarded(smtp_ports, hosted):
    """CVE-2011-0411: commands pipelined behind STARTTLS in clear text must not run."""
    client = Transcript(smtp_ports["submission"])
    client.ehlo()
    client.send(
        b"STARTTLS\r\nAUTH PLAIN " + plain("alice@example.org", "secret").encode() + b"\r\n"
    )
    client.expect(replies.S220_READY_TLS)
    client.starttls()
    client.command("MAIL FROM:<alice@example.org>", replies.S503_NEED_HELO)
    client.ehlo()
    client.command("MAIL FROM:<alice@example.org>", replies.S530_AUTH_REQUIRED)
    client.close()


def test_auth_during_a_transaction_is_refused(smtp_ports, hosted):
    client = secured(smtp_ports["submission"])
    client.command(f"AUTH PLAIN {plain('alice@example.org', 'secret')}", replies.S235_AUTH_OK)
    client.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    client.command(f"AUTH PLAIN {plain('bob@example.org', 'secret')}", replies.S503_AUTH_ALREADY)
    client.close()


def test_unknown_user_and_wrong_password_look_the_same(smtp_ports, hosted):
    client = secured(smtp_ports["submission"])
    client.command(f"AUTH PLAIN {plain('nobody@example.org', 'secret')}", replies.S535_AUTH_FAILED)
    client.command(f"AUTH PLAIN {plain('alice@example.org', 'wrong')}", replies.S535_AUTH_FAILED)
    client.close()


def test_repeated_failures_close_the_connection_and_slow_down(smtp_ports, hosted):
    client = secured(smtp_ports["submission"])
    wrong = plain("alice@example.org", "wrong")
    client.command(f"AUTH PLAIN {wrong}", replies.S535_AUTH_FAILED)
    client.command(f"AUTH PLAIN {wrong}", replies.S535_AUTH_FAILED)
    client.command(f"AUTH PLAIN {wrong}", replies.S535_AUTH_FAILED)
    client.expect(replies.S421_TOO_MANY_ERRORS.format("mx.test.example"))
    assert client.closed()
    # A new connection is slowed down before its attempt is even checked.
    client = secured(smtp_ports["submission"])
    started = time.monotonic()
    client.command(f"AUTH PLAIN {plain('alice@example.org', 'secret')}", replies.S235_AUTH_OK)
    assert time.monotonic() - started >= throttle.BASE_DELAY
    client.close()

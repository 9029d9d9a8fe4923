"""ManageSieve under attack: password guessing meets the shared limiter, bad input and idle
or greedy clients end their own sessions and nobody else's."""

from __future__ import annotations

import logging
import time

import pytest

from mailboxes import throttle
from protocols.managesieve import responses as R
from tests.protocols.managesieve.conftest import ADDRESS, plain, secure_login

pytestmark = pytest.mark.django_db(transaction=True)


def tls_session(client_for):
    client = client_for()
    client.command("STARTTLS")
    client.starttls()
    client.response()
    return client


def test_failed_logins_are_throttled_across_sessions(client_for, mailbox):
    for _ in range(3):
        client = tls_session(client_for)
        assert client.command(f'AUTHENTICATE "PLAIN" "{plain(password="guess")}"') == (
            R.NO_AUTH_FAILED
        )
        client.close()
        # The limiter's wait counts from the last failure, so the clock starts here: the next
        # session's connection and TLS handshake are part of it.
        last_failure = time.monotonic()
    client = tls_session(client_for)
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain(password="guess")}"') == (R.NO_AUTH_FAILED)
    waited = time.monotonic() - last_failure
    assert waited >= 0.9 * throttle.penalty(3, throttle.PAIR_FREE_FAILURES)


def test_logins_are_logged_with_the_protocol(client_for, mailbox, caplog):
    caplog.set_level(logging.INFO)
    client = tls_session(client_for)
    client.command(f'AUTHENTICATE "PLAIN" "{plain(password="guess")}"')
    client.command(f'AUTHENTICATE "PLAIN" "{plain()}"')
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("auth ")]
    assert any("auth failure protocol=managesieve" in line for line in lines), lines
    assert any("auth success protocol=managesieve" in line for line in lines), lines


def test_unknown_user_wrong_password_and_inactive_mailbox_look_the_same(client_for, mailbox):
    client = tls_session(client_for)
    unknown = plain("nobody@example.org")
    assert client.command(f'AUTHENTICATE "PLAIN" "{unknown}"') == R.NO_AUTH_FAILED
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain(password="x")}"') == R.NO_AUTH_FAILED
    mailbox.active = False
    mailbox.save(update_fields=["active"])
    other = tls_session(client_for)
    assert other.command(f'AUTHENTICATE "PLAIN" "{plain()}"') == R.NO_AUTH_FAILED


def test_pipelined_junk_ends_that_session_only(client_for, mailbox):
    client = client_for()
    client.send_raw(b"LISTSCRIPTS\r\n" * 2000)
    for _ in range(20):
        assert client.response() == R.NO_WRONG_STATE_AUTH
    assert client.response() == R.BYE_TOO_MANY_ERRORS
    other = client_for()
    secure_login(other)
    assert other.command("LISTSCRIPTS") == R.OK_LISTSCRIPTS


def test_connections_per_address_are_capped(sieve_settings, client_for):
    sieve_settings.MAILHOST_MAX_CONNECTIONS_PER_IP = 2
    client_for()
    client_for()
    third = client_for(greeting=False)
    assert third.response() == R.BYE_TOO_MANY_CONNECTIONS
    assert third.closed()


def test_an_idle_session_is_logged_out(sieve_settings, client_for, mailbox):
    sieve_settings.MAILHOST_MANAGESIEVE_IDLE_TIMEOUT = 1
    client = client_for()
    secure_login(client)
    time.sleep(1.5)
    assert client.response() == R.BYE_IDLE
    assert client.closed()


def test_a_script_literal_before_login_is_refused(client_for):
    client = client_for()
    client.send_raw(b'PUTSCRIPT "x" {20000+}\r\n')
    assert client.response() == R.BYE_LITERAL_TOO_LARGE
    assert client.closed()


def test_an_address_given_as_authzid_of_another_user_fails(client_for, mailbox, make_mailbox):
    make_mailbox("bob@example.org", "bobsecret")
    client = tls_session(client_for)
    token = plain(ADDRESS, "secret", authzid="bob@example.org")
    assert client.command(f'AUTHENTICATE "PLAIN" "{token}"') == R.NO_AUTH_FAILED


def test_a_large_literal_as_a_sasl_response_closes(client_for, mailbox):
    client = tls_session(client_for)
    client.send('AUTHENTICATE "PLAIN"')
    assert client.line() == b'""\r\n'
    client.send_raw(b"{100000+}\r\nLOGOUT\r\n")
    assert client.response() == R.BYE_LITERAL_TOO_LARGE
    assert client.closed()


def test_a_malformed_sasl_response_is_a_failed_login(client_for, mailbox):
    client = tls_session(client_for)
    client.send('AUTHENTICATE "PLAIN"')
    assert client.line() == b'""\r\n'
    assert client.command('"unterminated') == R.NO_AUTH_MALFORMED
    assert client.command(f'AUTHENTICATE "PLAIN" "{plain()}"') == R.OK_LOGGED_IN


def test_stopping_the_listener_says_bye_to_open_sessions(sieve_settings, mailbox):
    from mailhost import runner
    from tests.protocols.managesieve.conftest import Client
    from tests.support.servers import running

    with running(runner.MANAGESIEVE) as ports:
        client = Client(ports["managesieve"])
        client.response()
        secure_login(client)
        started = time.monotonic()
    # The client read nothing while the listener stopped: it is cut after the grace, not 10 s.
    assert time.monotonic() - started < 8
    assert client.response() == R.BYE_SHUTDOWN
    assert client.closed()

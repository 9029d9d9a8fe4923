"""POP3 security regressions: STLS injection, idle timeout, connection limits, guessing."""

from __future__ import annotations

import time

import pytest

from mailboxes import throttle
from mailboxes.selectors import folder_get, messages_in
from protocols.pop3 import responses as R
from tests.protocols.pop3.conftest import ADDRESS, PASSWORD, deliver, login

pytestmark = pytest.mark.django_db(transaction=True)


def test_commands_pipelined_after_stls_are_dropped(client_for, settings, mailbox):
    """Plaintext sent behind STLS must not run inside the TLS session (CVE-2011-0411 class)."""
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    client = client_for()
    client.send_raw(f"STLS\r\nUSER {ADDRESS}\r\nPASS {PASSWORD}\r\nCAPA\r\n".encode())
    assert client.line() == R.OK_STLS
    assert client.buffer == b""
    client.starttls()
    # Had the injected lines run, replies to them would come first.
    assert client.command("NOOP") == R.ERR_WRONG_STATE
    assert client.command(f"PASS {PASSWORD}") == R.ERR_PASS_WITHOUT_USER
    assert login(client) == R.ok_login(0, 0)


def test_idle_session_is_closed_without_update(client_for, settings, mailbox):
    # RFC 1939 3: on the autologout timer the server closes without UPDATE and without reply.
    settings.MAILHOST_POP3_IDLE_TIMEOUT = 1
    deliver(b"Subject: keep\r\n\r\nme\r\n")
    client = client_for()
    login(client)
    assert client.command("DELE 1") == R.ok_dele(1)
    time.sleep(1.5)
    assert client.closed()
    inbox = folder_get(mailbox, "INBOX")
    assert messages_in(inbox).count() == 1


def test_idle_timer_restarts_with_each_command(client_for, settings, mailbox):
    settings.MAILHOST_POP3_IDLE_TIMEOUT = 1
    client = client_for()
    login(client)
    for _ in range(4):
        time.sleep(0.5)
        assert client.command("NOOP") == R.OK


def test_connections_per_ip_are_limited(client_for, settings):
    settings.MAILHOST_MAX_CONNECTIONS_PER_IP = 2
    client_for()
    client_for()
    third = client_for(greeting=False)
    assert third.line() == R.ERR_TOO_MANY_CONNECTIONS
    assert third.closed()


def test_failed_logins_are_throttled_across_sessions(client_for, mailbox):
    for _ in range(3):
        client = client_for()
        assert client.command(f"USER {ADDRESS}") == R.OK_USER
        assert client.command("PASS guess") == R.ERR_AUTH_FAILED
        client.close()
    client = client_for()
    assert client.command(f"USER {ADDRESS}") == R.OK_USER
    started = time.monotonic()
    assert client.command("PASS guess") == R.ERR_AUTH_FAILED
    assert time.monotonic() - started >= 0.9 * throttle.penalty(3, throttle.PAIR_FREE_FAILURES)


def test_unknown_user_and_wrong_password_look_the_same(client_for, mailbox):
    client = client_for()
    assert client.command("USER nobody@example.org") == R.OK_USER
    assert client.command("PASS secret") == R.ERR_AUTH_FAILED
    assert client.command(f"USER {ADDRESS}") == R.OK_USER
    assert client.command("PASS wrong") == R.ERR_AUTH_FAILED


def test_inactive_mailbox_cannot_log_in(client_for, mailbox):
    mailbox.active = False
    mailbox.save(update_fields=["active"])
    client = client_for()
    assert login(client) == R.ERR_AUTH_FAILED


def test_huge_pipelined_input_does_not_stop_the_server(client_for, mailbox):
    client = client_for()
    client.send_raw(b"NOOP\r\n" * 2000)
    assert client.line() == R.ERR_WRONG_STATE
    # The session ends after too many errors; the server keeps serving others.
    other = client_for()
    assert login(other) == R.ok_login(0, 0)


def test_client_that_stops_reading_is_dropped(client_for, settings, mailbox):
    settings.MAILHOST_POP3_IDLE_TIMEOUT = 1
    deliver(b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 20_000)  # 20 MB
    client = client_for()
    login(client)
    client.send("RETR 1")  # and never read the reply
    time.sleep(2.5)
    # The session was dropped without UPDATE, and its lease went back.
    other = client_for()
    assert login(other) == R.ok_login(1, 20 * 1000 * 1000 + len(b"Subject: big\r\n\r\n"))

"""Transcripts: CAPABILITY NOOP LOGOUT ID ENABLE STARTTLS LOGIN AUTHENTICATE, and states."""

from __future__ import annotations

import base64

import pytest

from protocols.imap import responses as r
from tests.protocols.imap.conftest import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

PLAIN = base64.b64encode(b"\0alice@example.org\0secret").decode()


def line(data: bytes) -> bytes:
    return data.rstrip(b"\r\n")


def test_greeting_and_capability_before_login_with_plaintext_allowed(client):
    c = client(login=False)
    assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    lines = c.cmd("a1", "CAPABILITY")
    assert lines[0].startswith(b"* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ")
    assert b"STARTTLS" in lines[0] and b"AUTH=PLAIN" in lines[0]
    assert lines[1] == line(r.OK_CAPABILITY.tagged("a1"))


def test_logindisabled_until_starttls(client, imap, settings):
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    c = client(login=False)
    caps = c.cmd("a1", "CAPABILITY")[0]
    assert b"LOGINDISABLED" in caps and b"AUTH=PLAIN" not in caps
    assert c.cmd("a2", "LOGIN alice@example.org secret") == [line(r.NO_LOGIN_DISABLED.tagged("a2"))]
    assert c.cmd("a3", f"AUTHENTICATE PLAIN {PLAIN}") == [line(r.NO_PRIVACY_REQUIRED.tagged("a3"))]
    assert c.cmd("a4", "STARTTLS") == [line(r.OK_BEGIN_TLS.tagged("a4"))]
    c.starttls()
    caps = c.cmd("a5", "CAPABILITY")[0]
    assert b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps and b"AUTH=PLAIN" in caps
    lines = c.cmd("a6", "LOGIN alice@example.org secret")
    assert lines[-1].startswith(b"a6 OK [CAPABILITY IMAP4rev1 ")
    assert lines[-1].endswith(b"] Logged in")


def test_starttls_drops_pipelined_plaintext(client, imap, settings):
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    c = client(login=False)
    c.send("a1 STARTTLS\r\na2 LOGIN alice@example.org secret\r\n")
    assert c.until("a1") == [line(r.OK_BEGIN_TLS.tagged("a1"))]
    c.starttls()
    # The injected LOGIN never ran: still not authenticated.
    assert c.cmd("a3", "SELECT INBOX") == [line(r.BAD_STATE.tagged("a3"))]


def test_implicit_tls_port(client):
    c = client(login=False, tls=True)
    assert b"STARTTLS" not in c.greeting and b"AUTH=PLAIN" in c.greeting
    c.login()
    assert c.cmd("a2", "STARTTLS") == [line(r.BAD_STATE.tagged("a2"))]


def test_login_failure_then_success(client):
    c = client(login=False)
    assert c.cmd("a1", "LOGIN alice@example.org wrong") == [line(r.NO_AUTH_FAILED.tagged("a1"))]
    assert c.cmd("a2", "LOGIN nobody@example.org secret") == [line(r.NO_AUTH_FAILED.tagged("a2"))]
    assert c.cmd("a3", "LOGIN {17+}\r\nalice@example.org {6+}\r\nsecret")[-1].startswith(
        b"a3 OK [CAPABILITY"
    )
    assert c.cmd("a4", "LOGIN alice@example.org secret") == [line(r.BAD_STATE.tagged("a4"))]


def test_too_many_failures_closes(client, settings):
    settings.MAILHOST_IMAP_MAX_AUTH_FAILURES = 2
    c = client(login=False)
    assert c.cmd("a1", "LOGIN alice@example.org x") == [line(r.NO_AUTH_FAILED.tagged("a1"))]
    c.send("a2 LOGIN alice@example.org y\r\n")
    assert c.line() == line(r.NO_AUTH_FAILED.tagged("a2"))
    assert c.line() == line(r.BYE_TOO_MANY_FAILURES.untagged())
    with pytest.raises(ConnectionError):
        c.line()


def test_authenticate_plain_with_initial_response(client):
    c = client(login=False)
    assert c.cmd("a1", f"AUTHENTICATE PLAIN {PLAIN}")[-1].startswith(b"a1 OK [CAPABILITY")


def test_authenticate_plain_with_continuation_and_cancel(client):
    c = client(login=False)
    c.send("a1 AUTHENTICATE PLAIN\r\n")
    assert c.line() == line(r.CONTINUE_AUTH)
    c.send("*\r\n")
    assert c.until("a1") == [line(r.BAD_AUTH_CANCELLED.tagged("a1"))]
    c.send("a2 AUTHENTICATE PLAIN\r\n")
    assert c.line() == line(r.CONTINUE_AUTH)
    c.send(PLAIN + "\r\n")
    assert c.until("a2")[-1].startswith(b"a2 OK [CAPABILITY")


def test_authenticate_bad_inputs(client):
    c = client(login=False)
    assert c.cmd("a1", "AUTHENTICATE CRAM-MD5") == [line(r.NO_UNKNOWN_MECHANISM.tagged("a1"))]
    assert c.cmd("a2", "AUTHENTICATE PLAIN !!!") == [line(r.BAD_BASE64.tagged("a2"))]
    wrong = base64.b64encode(b"\0alice@example.org\0nope").decode()
    assert c.cmd("a3", f"AUTHENTICATE PLAIN {wrong}") == [line(r.NO_AUTH_FAILED.tagged("a3"))]


def test_state_table(client):
    c = client(login=False)
    assert c.cmd("a1", "SELECT INBOX") == [line(r.BAD_STATE.tagged("a1"))]
    assert c.cmd("a2", "FETCH 1 FLAGS") == [line(r.BAD_STATE.tagged("a2"))]
    c.login()
    assert c.cmd("a3", "FETCH 1 FLAGS") == [line(r.BAD_NOT_SELECTED.tagged("a3"))]
    assert c.cmd("a4", "CLOSE") == [line(r.BAD_NOT_SELECTED.tagged("a4"))]


def test_noop_id_enable_logout(client):
    c = client()
    assert c.cmd("a1", "NOOP") == [line(r.OK_NOOP.tagged("a1"))]
    assert c.cmd("a2", 'ID ("name" "test")') == [
        b'* ID ("name" "Mailhost" "vendor" "Mailhost")',
        line(r.OK_COMPLETED.tagged("a2")),
    ]
    assert c.cmd("a3", "ENABLE CONDSTORE X-UNKNOWN UTF8=ACCEPT") == [
        b"* ENABLED CONDSTORE UTF8=ACCEPT",
        line(r.OK_COMPLETED.tagged("a3")),
    ]
    assert c.cmd("a4", "ENABLE CONDSTORE") == [b"* ENABLED", line(r.OK_COMPLETED.tagged("a4"))]
    assert c.cmd("a5", "LOGOUT") == [
        line(r.BYE_LOGOUT.untagged()),
        line(r.OK_LOGOUT.tagged("a5")),
    ]


def test_bad_command_keeps_session(client):
    c = client()
    assert c.cmd("a1", "FROBNICATE")[0].startswith(b"a1 BAD ")
    assert c.cmd("a2", "NOOP") == [line(r.OK_NOOP.tagged("a2"))]


def test_commands_before_auth_limited(client, settings):
    settings.MAILHOST_IMAP_MAX_COMMANDS_BEFORE_AUTH = 5
    c = client(login=False)
    for i in range(5):
        assert c.cmd(f"n{i}", "NOOP") == [line(r.OK_NOOP.tagged(f"n{i}"))]
    c.send("n6 NOOP\r\n")
    assert c.line() == line(r.BYE_TOO_MANY_COMMANDS.untagged())


def test_connections_per_user_limited(client, settings):
    settings.MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER = 1
    client()
    c = client(login=False)
    assert c.cmd("a1", "LOGIN alice@example.org secret") == [
        line(r.NO_TOO_MANY_CONNECTIONS.tagged("a1"))
    ]


def test_transcript_class_is_usable_directly(imap):
    c = Transcript(imap["ports"]["imap"])
    assert c.greeting.startswith(b"* OK")
    c.close()

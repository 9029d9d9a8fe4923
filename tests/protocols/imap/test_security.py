"""Security regressions: oversized lines and literals, pre-auth limits, auth throttling."""

from __future__ import annotations

import time

import pytest

from mailboxes import throttle
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def test_overlong_line_gets_bad_and_session_continues(client, settings):
    settings.MAILHOST_IMAP_MAX_LINE_LENGTH = 8192
    c = client()
    c.send(b"a1 NOOP " + b"x" * 100_000 + b"\r\n")
    assert c.until("a1") == [b"a1 BAD [TOOBIG] Command line too long"]
    assert c.cmd("a2", "NOOP") == [ok("a2", r.OK_NOOP)]


def test_oversized_non_synchronizing_literal_closes_the_connection(client, settings):
    settings.MAILHOST_IMAP_MAX_LITERAL_SIZE = 2048
    c = client()
    c.send("a1 APPEND INBOX {100000+}\r\n")
    assert c.line() == r.BYE_LITERAL_TOO_BIG.untagged().rstrip(b"\r\n")
    assert c.line() == b"a1 BAD [TOOBIG] Literal too large"
    with pytest.raises(ConnectionError):
        c.line()


def test_oversized_synchronizing_literal_never_gets_a_continuation(client, settings):
    settings.MAILHOST_IMAP_MAX_LITERAL_SIZE = 2048
    c = client()
    c.send("a1 LOGIN {100000}\r\n")
    assert c.line() == b"a1 NO [TOOBIG] Literal too large"
    assert c.cmd("a2", "NOOP") == [ok("a2", r.OK_NOOP)]


def test_literal_before_auth_is_bounded_by_the_same_limit(client, settings):
    settings.MAILHOST_IMAP_MAX_LITERAL_SIZE = 2048
    c = client(login=False)
    c.send("a1 LOGIN {5000}\r\n")
    assert c.line() == b"a1 NO [TOOBIG] Literal too large"


def test_failed_logins_are_slowed_per_client_address(client):
    c = client(login=False)
    for i in range(throttle.PAIR_FREE_FAILURES):
        assert c.cmd(f"f{i}", "LOGIN alice@example.org wrong") == [ok(f"f{i}", r.NO_AUTH_FAILED)]
    other = client(login=False)  # a new connection from the same address is slowed too
    started = time.monotonic()
    assert other.cmd("g1", "LOGIN alice@example.org wrong") == [ok("g1", r.NO_AUTH_FAILED)]
    assert time.monotonic() - started >= throttle.BASE_DELAY * 0.9


def test_keywords_announced_in_flags_across_sessions(client):
    one, two = client(), client()
    one.cmd("a0", b"APPEND INBOX {7+}\r\nX: y\r\n\r\n")
    one.cmd("a1", "SELECT INBOX")
    two.cmd("b1", "SELECT INBOX")
    assert two.cmd("b2", "STORE 1 +FLAGS.SILENT ($Project)") == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $MDNSent "
        b"$NotJunk $Phishing $Project)",
        ok("b2"),
    ]
    time.sleep(0.2)
    assert one.cmd("a2", "NOOP") == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $MDNSent "
        b"$NotJunk $Phishing $Project)",
        b"* 1 FETCH (FLAGS ($Project \\Recent))",
        ok("a2", r.OK_NOOP),
    ]
    three = client()
    assert b"$Project" in three.cmd("c1", "EXAMINE INBOX")[0]

"""Transcripts: MULTIAPPEND (RFC 3502): several messages in one APPEND, all or none."""

from __future__ import annotations

import pytest

from mailboxes import selectors
from mailboxes.models import Mailbox
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)


def raw(n: int, size: int = 100) -> bytes:
    return b"From: bob@example.net\r\nSubject: part %d\r\n\r\n" % n + b"y" * size + b"\r\n"


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def state(imap) -> tuple:
    mailbox = Mailbox.objects.get(pk=imap["mailbox"].pk)
    inbox = selectors.folder_get(mailbox, "INBOX")
    return inbox.message_count, inbox.uidnext, mailbox.used_bytes


def test_capability_and_all_appended(client, imap):
    c = client()
    assert b"MULTIAPPEND" in c.cmd("c1", "CAPABILITY")[0].split()
    folder = selectors.folder_get(imap["mailbox"], "INBOX")
    command = (
        b"APPEND INBOX (\\Seen) "
        + literal(raw(1))
        + b' (\\Flagged) "01-Jan-2024 10:00:00 +0000" '
        + literal(raw(2))
        + b" "
        + literal(raw(3))
    )
    assert c.cmd("a1", command) == [
        b"a1 OK [APPENDUID %d 1:3] APPEND completed" % folder.uidvalidity
    ]
    c.cmd("s1", "SELECT INBOX")
    lines = c.cmd("f1", "FETCH 1:3 (FLAGS INTERNALDATE)")
    assert lines[0].startswith(b"* 1 FETCH (FLAGS (\\Seen")
    assert lines[1].startswith(b"* 2 FETCH (FLAGS (\\Flagged")
    assert b'INTERNALDATE "01-Jan-2024 10:00:00 +0000"' in lines[1]
    assert len(lines) == 4


def test_synchronizing_literals(client):
    # the client waits for "+" before each message
    c = client()
    first, second = raw(1), raw(2)
    c.send(b"a1 APPEND INBOX {%d}\r\n" % len(first))
    assert c.line().startswith(b"+ ")
    c.send(first + b" {%d}\r\n" % len(second))
    assert c.line().startswith(b"+ ")
    c.send(second + b"\r\n")
    assert c.until("a1")[-1].startswith(b"a1 OK [APPENDUID")


def test_failure_in_the_middle_appends_none(client, imap):
    c = client()
    before = state(imap)
    # the second message would pass the quota: the first is not kept either
    Mailbox.objects.filter(pk=imap["mailbox"].pk).update(quota=before[2] + 1000)
    command = b"APPEND INBOX " + literal(raw(1, 300)) + b" " + literal(raw(2, 900))
    assert c.cmd("a1", command) == [r.NO_OVER_QUOTA.tagged("a1").rstrip(b"\r\n")]
    assert state(imap) == before
    # a keyword over the length cap on the third: nothing of the first two stays
    Mailbox.objects.filter(pk=imap["mailbox"].pk).update(quota=0)
    command = (
        b"APPEND INBOX "
        + literal(raw(1))
        + b" "
        + literal(raw(2))
        + b" (k"
        + b"x" * 200
        + b") "
        + literal(raw(3))
    )
    assert c.cmd("a2", command)[0].startswith(b"a2 NO [LIMIT]")
    assert state(imap) == before
    c.cmd("s1", "SELECT INBOX")
    assert c.cmd("s2", "SEARCH ALL") == [b"* SEARCH", b"s2 OK Completed"]
    # and the mailbox takes the next APPEND as usual
    assert c.cmd("a3", b"APPEND INBOX " + literal(raw(4)))[-1].startswith(b"a3 OK")

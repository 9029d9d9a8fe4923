"""Transcripts: SAVEDATE (RFC 8514): FETCH SAVEDATE, set anew by COPY and MOVE, NIL for
rows stored before the column; SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from mailboxes.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

RAW = b"From: bob@example.net\r\nSubject: s\r\n\r\nbody\r\n"


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def savedate(line: bytes) -> datetime:
    text = re.search(rb'SAVEDATE "([^"]+)"', line).group(1).decode()
    return datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z")


def test_savedate(client, imap):
    c = client()
    assert b"SAVEDATE" in c.cmd("c1", "CAPABILITY")[0].split()
    # an old internal date: the save date is now, not that
    c.cmd("a1", b'APPEND INBOX "01-Jan-2001 10:00:00 +0000" ' + literal(RAW))
    c.cmd("a2", b'APPEND INBOX "01-Jan-2001 10:00:00 +0000" ' + literal(RAW))
    c.cmd("s1", "SELECT INBOX")
    saved = savedate(c.cmd("f1", "FETCH 1 (SAVEDATE)")[0])
    assert abs(datetime.now(UTC) - saved) < timedelta(minutes=2)
    assert c.cmd("f2", "FETCH 1 (INTERNALDATE)")[0] == (
        b'* 1 FETCH (INTERNALDATE "01-Jan-2001 10:00:00 +0000")'
    )
    # a row older than the column has no save date: NIL, and searches use its internal date
    Message.objects.filter(folder__mailbox=imap["mailbox"], uid=2).update(saved_at=None)
    assert c.cmd("f3", "FETCH 2 (UID SAVEDATE)")[0] == b"* 2 FETCH (UID 2 SAVEDATE NIL)"
    today = datetime.now(UTC).strftime("%d-%b-%Y")
    assert c.cmd("q1", f"SEARCH SAVEDSINCE {today}")[0] == b"* SEARCH 1"
    assert c.cmd("q2", f"SEARCH SAVEDON {today}")[0] == b"* SEARCH 1"
    assert c.cmd("q3", "SEARCH SAVEDBEFORE 2-Jan-2001")[0] == b"* SEARCH 2"
    assert c.cmd("q4", "SEARCH SAVEDON 1-Jan-2001")[0] == b"* SEARCH 2"
    assert c.cmd("q5", "SEARCH SAVEDATESUPPORTED")[0] == b"* SEARCH 1 2"
    assert c.cmd("q6", "SEARCH NOT SAVEDSINCE 1-Jan-1990")[0] == b"* SEARCH"
    # COPY gives the copy its own save date (RFC 8514 3); so does MOVE
    c.cmd("c2", "COPY 2 Archive")
    c.cmd("m1", "MOVE 1 Trash")
    c.cmd("s2", "SELECT Archive")
    assert abs(datetime.now(UTC) - savedate(c.cmd("f4", "FETCH 1 (SAVEDATE)")[0])) < timedelta(
        minutes=2
    )
    c.cmd("s3", "SELECT Trash")
    assert savedate(c.cmd("f5", "FETCH 1 (SAVEDATE)")[0]) >= saved

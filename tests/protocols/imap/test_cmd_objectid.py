"""Transcripts: OBJECTID (RFC 8474): MAILBOXID on CREATE, SELECT, STATUS and LIST-STATUS,
kept by RENAME; EMAILID and THREADID in FETCH, kept by COPY, and as SEARCH keys."""

from __future__ import annotations

import re

import pytest

from mailboxes import services
from protocols.imap.objectid import thread_id

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = b"From: a@example.org\r\nMessage-ID: <root@x>\r\nSubject: t\r\n\r\nroot\r\n"
REPLY = (
    b"From: b@example.org\r\nMessage-ID: <reply@x>\r\nReferences: <root@x>\r\n"
    b"Subject: Re: t\r\n\r\nreply\r\n"
)
LONE = b"From: c@example.org\r\nSubject: no ids\r\n\r\nlone\r\n"


def test_mailboxid(client):
    c = client()
    assert b"OBJECTID" in c.cmd("c1", "CAPABILITY")[0].split()
    reply = c.cmd("a1", "CREATE Projects")[0]
    match = re.fullmatch(rb"a1 OK \[MAILBOXID \((F\d+)\)\] Completed", reply)
    assert match, reply
    mailboxid = match.group(1)
    assert c.cmd("a2", "STATUS Projects (MAILBOXID MESSAGES)")[0] == (
        b'* STATUS "Projects" (MAILBOXID (%s) MESSAGES 0)' % mailboxid
    )
    c.cmd("a3", "RENAME Projects Archive/Projects")
    assert c.cmd("a4", 'LIST "" Archive/Projects RETURN (STATUS (MAILBOXID))')[1] == (
        b'* STATUS "Archive/Projects" (MAILBOXID (%s))' % mailboxid
    )
    lines = c.cmd("a5", "SELECT Archive/Projects")
    assert b"* OK [MAILBOXID (%s)] Ok" % mailboxid in lines
    other = c.cmd("a6", "STATUS INBOX (MAILBOXID)")[0]
    assert mailboxid not in other


def test_emailid_and_threadid(client):
    for raw in (ROOT, REPLY, LONE):
        services.message_deliver(raw=raw, recipients=["alice@example.org"])
    c = client()
    c.cmd("s1", "SELECT INBOX")
    lines = c.cmd("f1", "FETCH 1:3 (EMAILID THREADID)")
    ids = [re.search(rb"EMAILID \((M\d+)\) THREADID (\(T\w+\)|NIL)", line) for line in lines[:3]]
    assert all(ids), lines
    emails = [m.group(1) for m in ids]
    threads = [m.group(2) for m in ids]
    assert len(set(emails)) == 3
    assert threads[0] == threads[1] == b"(%s)" % thread_id("<root@x>").encode()
    assert threads[2] == b"NIL"
    # COPY shares the bytes: the copy has the same EMAILID (RFC 8474 5.1)
    c.cmd("c1", "COPY 2 Archive")
    c.cmd("s2", "SELECT Archive")
    assert c.cmd("f2", "UID FETCH 1 (EMAILID)")[0] == b"* 1 FETCH (UID 1 EMAILID (%s))" % emails[1]
    c.cmd("s3", "SELECT INBOX")
    assert c.cmd("q1", b"SEARCH EMAILID " + emails[2])[0] == b"* SEARCH 3"
    assert c.cmd("q2", b"SEARCH THREADID " + threads[0][1:-1])[0] == b"* SEARCH 1 2"
    assert c.cmd("q3", "SEARCH EMAILID M999999")[0] == b"* SEARCH"
    assert c.cmd("q4", "SEARCH OR THREADID Tnone EMAILID " + emails[0].decode())[0] == (
        b"* SEARCH 1"
    )
    assert c.cmd("q5", 'SEARCH EMAILID "bad id!"')[0].startswith(b"q5 BAD")

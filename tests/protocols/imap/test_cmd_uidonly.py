"""Transcripts: UIDONLY (RFC 9586): UIDs only, in commands and in responses."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r
from tests.protocols.imap.conftest import deliver_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nSubject: hello\r\n\r\nHi.\r\n"


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def required(tag: str) -> list[bytes]:
    return [ok(tag, r.BAD_UID_REQUIRED)]


def deliver(n: int = 1) -> None:
    for _ in range(n):
        services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])


def uidonly_session(client):
    c = client()
    assert b"UIDONLY" in c.cmd("c1", "CAPABILITY")[0].split()
    assert c.cmd("e1", "ENABLE UIDONLY") == [b"* ENABLED UIDONLY", ok("e1")]
    return c


def test_sequence_number_forms_get_uidrequired(client, imap):
    deliver(3)
    c = uidonly_session(client)
    c.cmd("s1", "CREATE Other")
    lines = c.cmd("s2", "SELECT INBOX")
    assert not any(b"[UNSEEN " in line for line in lines)  # a sequence number
    assert b"* 3 EXISTS" in lines
    for tag, command in (
        ("b1", "FETCH 1 (FLAGS)"),
        ("b2", "STORE 1 +FLAGS (\\Seen)"),
        ("b3", "SEARCH ALL"),
        ("b4", "COPY 1 Other"),
        ("b5", "MOVE 1 Other"),
        ("b6", "SORT (DATE) UTF-8 ALL"),
        ("b7", "THREAD REFERENCES UTF-8 ALL"),
        ("b8", "REPLACE 1 INBOX {3+}\r\nx\r\n"),
        # sequence numbers inside the search program of the UID forms
        ("b9", "UID SEARCH 1:2"),
        ("b10", "UID SEARCH OR UID 1 NOT 2"),
        ("b11", "UID SORT (DATE) UTF-8 1:*"),
        ("b12", "UID THREAD REFERENCES UTF-8 NOT 1"),
        ("b13", "ESEARCH IN (PERSONAL) 1:*"),
    ):
        assert c.cmd(tag, command) == required(tag), command
    # Nothing moved, copied or changed.
    assert c.cmd("u1", "UID SEARCH RETURN (COUNT) SEEN") == [
        b'* ESEARCH (TAG "u1") UID COUNT 0',
        ok("u1"),
    ]
    assert c.cmd("u2", "STATUS Other (MESSAGES)") == [b'* STATUS "Other" (MESSAGES 0)', ok("u2")]


def test_uid_fetch_store_search_answer_by_uid(client, imap):
    deliver(3)
    folder = selectors.folder_get(imap["mailbox"], "INBOX")
    services.messages_store_flags(folder=folder, uids=[1], flags=["\\Deleted"], mode="add")
    services.messages_expunge(folder=folder)  # UIDs 2 and 3 remain, numbered 1 and 2
    c = uidonly_session(client)
    c.cmd("s1", "SELECT INBOX")
    # RFC 9586 3.3: `* uid UIDFETCH`, the UID item only when asked for
    assert c.cmd("f1", "UID FETCH 1:* (FLAGS)") == [
        b"* 2 UIDFETCH (FLAGS (\\Recent))",
        b"* 3 UIDFETCH (FLAGS (\\Recent))",
        ok("f1"),
    ]
    assert c.cmd("f2", "UID FETCH 3 (UID RFC822.SIZE)") == [
        b"* 3 UIDFETCH (UID 3 RFC822.SIZE %d)" % len(MESSAGE),
        ok("f2"),
    ]
    assert c.cmd("f3", "UID FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject)])") == [
        b"* 2 UIDFETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n)",
        ok("f3"),
    ]
    # An implicit \Seen reports the flags too
    assert c.cmd("f4", "UID FETCH 3 (BODY[TEXT])") == [
        b"* 3 UIDFETCH (BODY[TEXT] {5}\r\nHi.\r\n FLAGS (\\Seen \\Recent))",
        ok("f4"),
    ]
    assert c.cmd("t1", "UID STORE 2 +FLAGS (\\Flagged)") == [
        b"* 2 UIDFETCH (FLAGS (\\Flagged \\Recent))",
        ok("t1"),
    ]
    assert c.cmd("t2", "UID STORE 2 +FLAGS.SILENT (\\Answered)") == [ok("t2")]
    assert c.cmd("q1", "UID SEARCH FLAGGED") == [b"* SEARCH 2", ok("q1")]
    assert c.cmd("q2", "UID SEARCH RETURN (SAVE) ANSWERED") == [ok("q2")]
    assert c.cmd("q3", "UID FETCH $ (FLAGS)") == [
        b"* 2 UIDFETCH (FLAGS (\\Answered \\Flagged \\Recent))",
        ok("q3"),
    ]
    assert c.cmd("q4", "UID SEARCH UID 3 NOT $") == [b"* SEARCH 3", ok("q4")]
    assert c.cmd("q5", "UID SORT (REVERSE ARRIVAL) UTF-8 ALL") == [b"* SORT 3 2", ok("q5")]
    assert c.cmd("q6", "UID THREAD ORDEREDSUBJECT UTF-8 ALL") == [
        b"* THREAD (2 3)",
        ok("q6"),
    ]


def test_condstore_and_qresync_with_uidonly(client, imap):
    deliver(2)
    folder = selectors.folder_get(imap["mailbox"], "INBOX")
    base = folder.highestmodseq
    services.messages_store_flags(folder=folder, uids=[2], flags=["\\Seen"], mode="add")
    folder = selectors.folder_get(imap["mailbox"], "INBOX")
    c = uidonly_session(client)
    assert c.cmd("e2", "ENABLE QRESYNC") == [b"* ENABLED QRESYNC", ok("e2")]
    v = folder.uidvalidity
    # RFC 9586 3: QRESYNC's sequence match data names sequence numbers
    assert c.cmd("s0", f"SELECT INBOX (QRESYNC ({v} {base} 1:2 (1 1)))") == required("s0")
    lines = c.cmd("s1", f"SELECT INBOX (QRESYNC ({v} {base} 1:2))")
    assert b"* 2 UIDFETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))" % folder.highestmodseq in lines
    assert lines[-1] == ok("s1", r.OK_SELECT_RW)
    modseq = folder.highestmodseq + 1
    assert c.cmd("t1", "UID STORE 1 +FLAGS.SILENT (\\Deleted)") == [
        b"* 1 UIDFETCH (MODSEQ (%d))" % modseq,
        ok("t1"),
    ]
    assert c.cmd("f1", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq - 1})") == [
        b"* 1 UIDFETCH (FLAGS (\\Deleted \\Recent) MODSEQ (%d))" % modseq,
        ok("f1"),
    ]
    assert c.cmd("x1", "EXPUNGE") == [b"* VANISHED 1", b"* 1 RECENT", ok("x1")]


def test_expunges_are_vanished_and_changes_elsewhere_are_uidfetch(client, imap):
    deliver(3)
    watcher = uidonly_session(client)
    actor = client()
    watcher.cmd("w0", "SELECT INBOX")
    actor.cmd("x0", "SELECT INBOX")
    # EXPUNGE of its own: VANISHED without QRESYNC (RFC 9586 3.4)
    watcher.cmd("w1", "UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert watcher.cmd("w2", "EXPUNGE") == [b"* VANISHED 1", b"* 2 RECENT", ok("w2")]
    # UID EXPUNGE and MOVE too
    watcher.cmd("w3", "UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert watcher.cmd("w4", "UID EXPUNGE 2") == [b"* VANISHED 2", b"* 1 RECENT", ok("w4")]
    watcher.cmd("w5", "CREATE Other")
    moved = watcher.cmd("w6", "UID MOVE 3 Other")
    assert moved[1:] == [
        b"* VANISHED 3",
        b"* 0 RECENT",
        ok("w6", r.Reply("OK", "MOVE completed")),
    ]
    assert moved[0].startswith(b"* OK [COPYUID ")
    # Changes made in another session, seen in IDLE: EXISTS, UIDFETCH, VANISHED
    watcher.send("w7 IDLE\r\n")
    assert watcher.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    deliver_in_thread(MESSAGE, "alice@example.org").join()
    assert watcher.line() == b"* 1 EXISTS"
    assert watcher.line() == b"* 1 RECENT"
    actor.cmd("x1", "NOOP")
    actor.cmd("x2", "STORE 1 +FLAGS.SILENT (\\Flagged \\Deleted)")
    assert watcher.line() == b"* 4 UIDFETCH (FLAGS (\\Flagged \\Deleted \\Recent))"
    actor.cmd("x3", "EXPUNGE")
    assert watcher.line() == b"* VANISHED 4"
    assert watcher.line() == b"* 0 RECENT"
    watcher.send("DONE\r\n")
    assert watcher.until("w7") == [ok("w7", r.OK_IDLE_DONE)]
    # The other session, without UIDONLY, kept its sequence numbers
    assert actor.cmd("x4", "NOOP") == [ok("x4", r.OK_NOOP)]


def test_notify_message_new_fetch_is_uidfetch(client, imap):
    c = uidonly_session(client)
    c.cmd("s1", "SELECT INBOX")
    assert c.cmd("n1", "NOTIFY SET (SELECTED (MessageNew (FLAGS) MessageExpunge))") == [ok("n1")]
    c.send("i1 IDLE\r\n")
    assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    deliver_in_thread(MESSAGE, "alice@example.org").join()
    assert c.line() == b"* 1 EXISTS"
    assert c.line() == b"* 1 RECENT"
    assert c.line() == b"* 1 UIDFETCH (FLAGS (\\Recent))"
    c.send("DONE\r\n")
    assert c.until("i1") == [ok("i1", r.OK_IDLE_DONE)]

"""Transcripts: APPEND STORE COPY MOVE EXPUNGE UID EXPUNGE (UIDPLUS, CONDSTORE, MOVE)."""

from __future__ import annotations

from unittest import mock

import pytest

from mailboxes import selectors, services
from protocols.imap import mime
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nSubject: hello\r\n\r\nHi.\r\n"


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def deliver(n: int = 1) -> None:
    for _ in range(n):
        services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])


def folder(imap, name="INBOX"):
    return selectors.folder_get(imap["mailbox"], name)


def test_append_with_flags_date_and_appenduid(client, imap):
    c = client()
    drafts = folder(imap, "Drafts")
    c.send(
        b'a1 APPEND Drafts (\\Seen \\Draft) "05-Mar-2024 10:00:00 +0100" {%d}\r\n' % len(MESSAGE)
    )
    assert c.line() == r.CONTINUE_LITERAL.rstrip(b"\r\n")
    c.send(MESSAGE + b"\r\n")
    assert c.until("a1") == [
        ok("a1", r.Reply("OK", "APPEND completed", f"APPENDUID {drafts.uidvalidity} 1"))
    ]
    message = selectors.messages_in(drafts).get()
    assert (message.seen, message.draft, message.internal_date.isoformat()) == (
        True,
        True,
        "2024-03-05T09:00:00+00:00",
    )
    assert selectors.blob_read(message.blob) == MESSAGE
    # LITERAL+: no continuation.
    lines = c.cmd("a2", b"APPEND Drafts {%d+}\r\n" % len(MESSAGE) + MESSAGE)
    assert lines == [
        ok("a2", r.Reply("OK", "APPEND completed", f"APPENDUID {drafts.uidvalidity} 2"))
    ]


def test_an_appended_message_has_its_structure_cached_and_its_first_fetch_writes_nothing(
    client, imap
):
    c = client()
    c.cmd("a1", b"APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE)
    message = selectors.messages_in(folder(imap, "INBOX")).get()
    assert message.mime_cache == {"imap": mime.analyze(MESSAGE)}
    c.cmd("a2", "SELECT INBOX")
    with mock.patch.object(services, "message_caches_put") as caches_put:
        lines = c.cmd("a3", "FETCH 1 (ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])")
    assert lines[-1] == ok("a3", r.OK_COMPLETED) and b"ENVELOPE" in lines[0]
    caches_put.assert_not_called()


def test_append_refusals(client, settings):
    c = client()
    assert c.cmd("a1", b"APPEND Nope {2+}\r\nhi") == [ok("a1", r.NO_TRYCREATE)]
    settings.MAILHOST_IMAP_MAX_LITERAL_SIZE = 2000
    c2 = client()
    # Oversized synchronizing literal: refused before the client sends it; session goes on.
    c2.send("a2 APPEND INBOX {5000}\r\n")
    assert c2.until("a2") == [b"a2 NO [TOOBIG] Literal too large"]
    assert c2.cmd("a3", "NOOP") == [ok("a3", r.OK_NOOP)]


def test_append_to_selected_folder_announces_exists(client):
    c = client()
    c.cmd("a1", "SELECT INBOX")
    lines = c.cmd("a2", b"APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE)
    assert lines[:2] == [b"* 1 EXISTS", b"* 1 RECENT"]


def test_store_modes_and_silent(client):
    deliver(2)
    c = client()
    c.cmd("a0", "SELECT INBOX")
    assert c.cmd("a1", "STORE 1 +FLAGS (\\Seen $Work)") == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $MDNSent $NotJunk $Phishing $Work)",
        b"* 1 FETCH (FLAGS (\\Seen $Work \\Recent))",
        ok("a1"),
    ]
    assert c.cmd("a2", "STORE 1 -FLAGS ($Work)") == [
        b"* 1 FETCH (FLAGS (\\Seen \\Recent))",
        ok("a2"),
    ]
    assert c.cmd("a3", "STORE 1:2 FLAGS (\\Flagged)") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent))",
        b"* 2 FETCH (FLAGS (\\Flagged \\Recent))",
        ok("a3"),
    ]
    assert c.cmd("a4", "STORE 1 +FLAGS.SILENT (\\Answered)") == [ok("a4")]
    assert c.cmd("a5", "UID STORE 2 +FLAGS (\\Draft)") == [
        b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Draft \\Recent))",
        ok("a5"),
    ]
    assert c.cmd("a6", "STORE 3 +FLAGS (\\Seen)") == [ok("a6", r.BAD_INVALID_SEQUENCE)]
    assert c.cmd("a7", "UID STORE 99 +FLAGS (\\Seen)") == [ok("a7")]


def test_store_announces_keywords_another_session_set_before_fetching_them(client):
    # RFC 9051 7.3.5: a FETCH may use a keyword only after a FLAGS response listed it; here
    # the keyword reaches c2 in its own STORE's FETCH (imaptest: "Keyword used without being
    # in FLAGS").
    deliver()
    c1, c2 = client(), client()
    c1.cmd("a0", "SELECT INBOX")
    c2.cmd("b0", "SELECT INBOX")
    c1.cmd("a1", "STORE 1 +FLAGS.SILENT ($Label5)")
    lines = c2.cmd("b1", "STORE 1 +FLAGS (\\Seen)")
    announced = [i for i, line in enumerate(lines) if line.startswith(b"* FLAGS (")]
    fetched = [i for i, line in enumerate(lines) if b" FETCH " in line and b"$Label5" in line]
    assert fetched and announced, lines
    assert b"$Label5" in lines[announced[0]] and announced[0] < fetched[0], lines


def test_store_unchangedsince_reports_modified(client, imap):
    deliver(2)
    c = client()
    c.cmd("a0", "SELECT INBOX (CONDSTORE)")
    inbox = folder(imap)
    services.messages_store_flags(folder=inbox, uids=[2], flags=["\\Seen"], mode="add")
    lines = c.cmd("a1", f"STORE 1:2 (UNCHANGEDSINCE {inbox.highestmodseq}) +FLAGS (\\Flagged)")
    assert lines[-1] == ok("a1", r.Reply("OK", "Conditional STORE failed", "MODIFIED 2"))
    assert (
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))" % (inbox.highestmodseq + 2) in lines
    )


def test_copy_and_move_with_copyuid(client, imap):
    deliver(3)
    c = client()
    c.cmd("a0", "SELECT INBOX")
    archive = folder(imap, "Archive")
    assert c.cmd("a1", "COPY 1:2 Archive") == [
        ok("a1", r.Reply("OK", "COPY completed", f"COPYUID {archive.uidvalidity} 1:2 1:2"))
    ]
    assert c.cmd("a2", "COPY 1 Nope") == [ok("a2", r.NO_TRYCREATE)]
    assert c.cmd("a3", "UID MOVE 2:3 Archive") == [
        r.Reply("OK", "Moved", f"COPYUID {archive.uidvalidity} 2:3 3:4").untagged().rstrip(b"\r\n"),
        b"* 3 EXPUNGE",
        b"* 2 EXPUNGE",
        b"* 1 RECENT",
        ok("a3", r.Reply("OK", "MOVE completed")),
    ]
    assert folder(imap).message_count == 1 and folder(imap, "Archive").message_count == 4
    assert c.cmd("a4", "FETCH 1:* (UID)") == [b"* 1 FETCH (UID 1)", ok("a4")]


def test_expunge_and_uid_expunge(client, imap):
    deliver(4)
    c = client()
    c.cmd("a0", "SELECT INBOX")
    c.cmd("a1", "STORE 1:4 +FLAGS.SILENT (\\Deleted)")
    # RFC 3501 7.3.2: the \Recent count changed with the mailbox's size, RECENT says so
    assert c.cmd("a2", "UID EXPUNGE 2:3") == [
        b"* 3 EXPUNGE",
        b"* 2 EXPUNGE",
        b"* 2 RECENT",
        ok("a2"),
    ]
    assert c.cmd("a3", "EXPUNGE") == [b"* 2 EXPUNGE", b"* 1 EXPUNGE", b"* 0 RECENT", ok("a3")]
    assert folder(imap).message_count == 0
    assert c.cmd("a4", "FETCH 1 FLAGS") == [ok("a4", r.BAD_INVALID_SEQUENCE)]


def test_expunge_of_recent_messages_reports_recent_where_the_count_changed(client):
    # imaptest's checkpoint adds up the sessions' last RECENT counts: without a RECENT after
    # the expunge the total exceeded the messages left ("Total RECENT count 41 larger than
    # current message count 37").
    deliver(3)
    holder, other, rev2 = client(), client(), client()
    assert b"* 3 RECENT" in holder.cmd("a0", "SELECT INBOX")
    assert b"* 0 RECENT" in other.cmd("b0", "SELECT INBOX")
    rev2.cmd("c0", "ENABLE IMAP4rev2")
    rev2.cmd("c1", "SELECT INBOX")
    holder.cmd("a1", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    # Expunged elsewhere: the session holding the \Recent is told at its next update.
    assert other.cmd("b1", "EXPUNGE")[-2:] == [b"* 2 EXPUNGE", ok("b1")]
    assert holder.cmd("a2", "NOOP") == [b"* 2 EXPUNGE", b"* 2 RECENT", ok("a2", r.OK_NOOP)]
    assert rev2.cmd("c2", "NOOP")[-2:] == [b"* 2 EXPUNGE", ok("c2", r.OK_NOOP)]
    assert holder.cmd("a3", "FETCH 1:* FLAGS") == [
        b"* 1 FETCH (FLAGS (\\Recent))",
        b"* 2 FETCH (FLAGS (\\Recent))",
        ok("a3"),
    ]


def test_append_binary_content_is_stored_as_sent_and_binary_returns_octets(client):
    raw = (
        b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"\x00-\xe4\r\n"
    )
    c = client()
    c.send(b"a1 APPEND INBOX ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
    assert c.until("a1")[-1].startswith(b"a1 OK [APPENDUID ")
    c.cmd("a2", "SELECT INBOX")
    # RFC 3516 4.1: BODY[] never carries NUL (sent as 0x80, as Dovecot does); BINARY[] gives
    # the stored octets back (literal8).
    assert c.cmd("a3", "FETCH 1 (BODY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[1])") == [
        b"* 1 FETCH (BODY[1] {5}\r\n\x80-\xe4\r\n BINARY.SIZE[1] 5 BINARY[1] ~{5}\r\n\x00-\xe4\r\n)",
        ok("a3"),
    ]

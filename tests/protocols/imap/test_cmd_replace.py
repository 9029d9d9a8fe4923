"""Transcripts: REPLACE and UID REPLACE (RFC 8508)."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.models import Mailbox
from protocols.imap import responses as r
from protocols.imap.commands.message import NO_NO_SUCH_MESSAGE

pytestmark = pytest.mark.django_db(transaction=True)


def draft(n: int, size: int = 50) -> bytes:
    return b"From: alice@example.org\r\nSubject: draft %d\r\n\r\n" % n + b"d" * size + b"\r\n"


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def test_replace_in_place_and_elsewhere(client, imap):
    drafts = selectors.folder_get(imap["mailbox"], "Drafts")
    c = client()
    assert b"REPLACE" in c.cmd("c1", "CAPABILITY")[0].split()
    c.cmd("a1", b"APPEND Drafts (\\Draft) " + literal(draft(1)))
    c.cmd("a2", b"APPEND Drafts (\\Draft) " + literal(draft(2)))
    c.cmd("s1", "SELECT Drafts")
    # the new version into the selected mailbox: its EXISTS, the old one's EXPUNGE
    assert c.cmd("r1", b"REPLACE 1 Drafts (\\Draft \\Seen) " + literal(draft(3))) == [
        b"* OK [APPENDUID %d 3] Replacement message ready" % drafts.uidvalidity,
        b"* 1 EXPUNGE",
        b"* 1 RECENT",
        b"* 2 EXISTS",
        b"* 2 RECENT",
        b"r1 OK REPLACE completed",
    ]
    assert c.cmd("f1", "FETCH 1:* (UID FLAGS)") == [
        b"* 1 FETCH (UID 2 FLAGS (\\Draft \\Recent))",
        b"* 2 FETCH (UID 3 FLAGS (\\Seen \\Draft \\Recent))",
        b"f1 OK Completed",
    ]
    # UID REPLACE into another mailbox (the draft is sent: it goes to Sent)
    sent = selectors.folder_get(imap["mailbox"], "Sent")
    assert c.cmd("r2", b"UID REPLACE 3 Sent (\\Seen) " + literal(draft(4))) == [
        b"* OK [APPENDUID %d 1] Replacement message ready" % sent.uidvalidity,
        b"* 2 EXPUNGE",
        b"* 1 RECENT",
        b"r2 OK REPLACE completed",
    ]
    assert selectors.folder_get(imap["mailbox"], "Sent").message_count == 1
    assert c.cmd("r3", b"UID REPLACE 99 Sent " + literal(draft(5))) == [
        r.NO_NONEXISTENT.with_text(NO_NO_SUCH_MESSAGE.text).tagged("r3").rstrip(b"\r\n")
    ]
    assert c.cmd("r4", b"REPLACE 1 Nowhere " + literal(draft(5))) == [
        r.NO_TRYCREATE.tagged("r4").rstrip(b"\r\n")
    ]
    assert c.cmd("r5", b"REPLACE 1:2 Drafts " + literal(draft(5)))[0].startswith(b"r5 BAD")


def test_replace_is_atomic_and_fits_a_full_mailbox(client, imap):
    services.message_deliver(raw=draft(1, 2000), recipients=["alice@example.org"])
    mailbox = Mailbox.objects.get(pk=imap["mailbox"].pk)
    Mailbox.objects.filter(pk=mailbox.pk).update(quota=mailbox.used_bytes)  # full
    c = client()
    c.cmd("s1", "SELECT INBOX")
    # no larger than what it replaces: it fits, as the old octets are freed first
    assert c.cmd("r1", b"REPLACE 1 INBOX " + literal(draft(2, 1990)))[-1] == (
        b"r1 OK REPLACE completed"
    )
    # larger: refused, and the old message stays
    assert c.cmd("r2", b"REPLACE 1 INBOX " + literal(draft(3, 5000))) == [
        r.NO_OVER_QUOTA.tagged("r2").rstrip(b"\r\n")
    ]
    assert c.cmd("f1", "FETCH 1:* (UID)") == [b"* 1 FETCH (UID 2)", b"f1 OK Completed"]
    examine = client()
    examine.cmd("e1", "EXAMINE INBOX")
    assert examine.cmd("r3", b"REPLACE 1 INBOX " + literal(draft(4))) == [
        r.NO_READ_ONLY.tagged("r3").rstrip(b"\r\n")
    ]

"""Transcripts: ESEARCH IN (MULTISEARCH, RFC 7377)."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)


def raw(subject: str) -> bytes:
    return f"From: bob@example.net\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def test_multisearch(client, imap):
    c = client()
    assert b"MULTISEARCH" in c.cmd("c1", "CAPABILITY")[0].split()
    c.cmd("k1", "CREATE Lists/Python")
    c.cmd("k2", "CREATE Lists/Python/Old")
    for folder, subject in (
        ("INBOX", "report"),
        ("INBOX", "other"),
        ("Archive", "report"),
        ("Lists/Python", "report"),
        ("Lists/Python/Old", "report"),
    ):
        c.cmd("a", b"APPEND " + folder.encode() + b" " + literal(raw(subject)))
    v = {
        name: selectors.folder_get(imap["mailbox"], name).uidvalidity
        for name in ("INBOX", "Archive", "Lists/Python", "Lists/Python/Old")
    }
    assert c.cmd("m1", "ESEARCH IN (PERSONAL) SUBJECT report") == [
        b'* ESEARCH (TAG "m1" MAILBOX "Archive" UIDVALIDITY %d) UID ALL 1' % v["Archive"],
        b'* ESEARCH (TAG "m1" MAILBOX INBOX UIDVALIDITY %d) UID ALL 1' % v["INBOX"],
        b'* ESEARCH (TAG "m1" MAILBOX "Lists/Python" UIDVALIDITY %d) UID ALL 1' % v["Lists/Python"],
        b'* ESEARCH (TAG "m1" MAILBOX "Lists/Python/Old" UIDVALIDITY %d) UID ALL 1'
        % v["Lists/Python/Old"],
        b"m1 OK Completed",
    ]
    assert c.cmd("m2", "ESEARCH IN (SUBTREE-ONE Lists) RETURN (COUNT) ALL") == [
        b'* ESEARCH (TAG "m2" MAILBOX "Lists/Python" UIDVALIDITY %d) UID COUNT 1'
        % v["Lists/Python"],
        b"m2 OK Completed",
    ]
    assert c.cmd("m3", "ESEARCH IN (INBOXES MAILBOXES (Archive Nope)) RETURN (MIN MAX) ALL") == [
        b'* ESEARCH (TAG "m3" MAILBOX "Archive" UIDVALIDITY %d) UID MIN 1 MAX 1' % v["Archive"],
        b'* ESEARCH (TAG "m3" MAILBOX INBOX UIDVALIDITY %d) UID MIN 1 MAX 2' % v["INBOX"],
        b"m3 OK Completed",
    ]
    assert c.cmd("m4", "ESEARCH IN (SUBSCRIBED) SUBJECT nothing") == [b"m4 OK Completed"]
    assert c.cmd("m5", "ESEARCH IN (PERSONAL) RETURN (SAVE) ALL")[0].startswith(b"m5 BAD")
    assert c.cmd("m6", "ESEARCH IN (EVERYWHERE) ALL")[0].startswith(b"m6 BAD")
    # without IN: the selected mailbox, as UID SEARCH RETURN
    assert c.cmd("m7", "ESEARCH ALL") == [r.BAD_NOT_SELECTED.tagged("m7").rstrip(b"\r\n")]
    c.cmd("s1", "SELECT INBOX")
    assert c.cmd("m8", "ESEARCH RETURN (COUNT) SUBJECT report") == [
        b'* ESEARCH (TAG "m8") UID COUNT 1',
        b"m8 OK Completed",
    ]
    # the selected mailbox is searched as this session sees it
    services.message_deliver(raw=raw("report"), recipients=["alice@example.org"])
    assert c.cmd("m9", "ESEARCH IN (SELECTED) SUBJECT report")[0] == (
        b'* ESEARCH (TAG "m9" MAILBOX INBOX UIDVALIDITY %d) UID ALL 1' % v["INBOX"]
    )

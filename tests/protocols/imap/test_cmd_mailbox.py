"""Transcripts: CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB NAMESPACE STATUS."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nSubject: hello\r\n\r\nHi.\r\n"


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def created(imap, tag: str, name: str) -> bytes:
    """CREATE's OK, with the new folder's MAILBOXID (RFC 8474 4.1)."""
    folder = selectors.folder_get(imap["mailbox"], name)
    return ok(tag, r.OK_COMPLETED.with_code(f"MAILBOXID (F{folder.id})"))


def test_default_folders_listed_with_special_use(client):
    c = client()
    assert c.cmd("a1", 'LIST "" "*"') == [
        b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
        ok("a1"),
    ]
    assert c.cmd("a2", 'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""', ok("a2")]


def test_create_hierarchy_percent_and_star(client, imap):
    c = client()
    assert c.cmd("a1", "CREATE Work/2024/Q1") == [created(imap, "a1", "Work/2024/Q1")]
    assert c.cmd("a2", "CREATE Work/") == [ok("a2", r.NO_ALREADY_EXISTS)]
    assert c.cmd("a3", 'LIST "" Work/%') == [
        b'* LIST (\\HasChildren) "/" "Work/2024"',
        ok("a3"),
    ]
    assert c.cmd("a4", "LIST Work/ *") == [
        b'* LIST (\\HasChildren) "/" "Work/2024"',
        b'* LIST (\\HasNoChildren) "/" "Work/2024/Q1"',
        ok("a4"),
    ]
    assert c.cmd("a5", 'LIST "" inbox') == [b'* LIST (\\HasNoChildren) "/" INBOX', ok("a5")]
    assert c.cmd("a6", "CREATE INBOX") == [ok("a6", r.NO_ALREADY_EXISTS)]


def test_modified_utf7_names_round_trip(client, imap):
    c = client()
    assert c.cmd("a1", "CREATE Entw&APw-rfe") == [created(imap, "a1", "Entwürfe")]
    assert selectors.folder_get(imap["mailbox"], "Entwürfe") is not None
    assert c.cmd("a2", 'LIST "" Entw*') == [
        b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"',
        ok("a2"),
    ]
    assert c.cmd("a3", "ENABLE UTF8=ACCEPT")[-1] == ok("a3")
    assert c.cmd("a4", 'LIST "" Entw*') == [
        '* LIST (\\HasNoChildren) "/" "Entwürfe"'.encode(),
        ok("a4"),
    ]


def test_delete_and_rename(client):
    c = client()
    c.cmd("a0", "CREATE Old/Child")
    assert c.cmd("a1", "DELETE Old") == [ok("a1", r.NO_HAS_CHILDREN)]
    assert c.cmd("a2", "RENAME Old New") == [ok("a2")]
    assert c.cmd("a3", 'LIST "" New*') == [
        b'* LIST (\\HasChildren) "/" "New"',
        b'* LIST (\\HasNoChildren) "/" "New/Child"',
        ok("a3"),
    ]
    assert c.cmd("a4", "DELETE New/Child") == [ok("a4")]
    assert c.cmd("a5", "DELETE New") == [ok("a5")]
    assert c.cmd("a6", "DELETE New") == [ok("a6", r.NO_NONEXISTENT)]
    assert c.cmd("a7", "DELETE INBOX") == [ok("a7", r.NO_INBOX_DELETE)]
    assert c.cmd("a8", "RENAME Sent Trash") == [ok("a8", r.NO_ALREADY_EXISTS)]


def test_rename_inbox_moves_messages(client, imap):
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    c = client()
    assert c.cmd("a1", "RENAME INBOX Saved") == [ok("a1")]
    assert c.cmd("a2", "STATUS INBOX (MESSAGES)") == [
        b"* STATUS INBOX (MESSAGES 0)",
        ok("a2"),
    ]
    assert c.cmd("a3", "STATUS Saved (MESSAGES)") == [
        b'* STATUS "Saved" (MESSAGES 1)',
        ok("a3"),
    ]


def test_subscribe_lsub_and_list_subscribed(client):
    c = client()
    c.cmd("a0", "CREATE Lists/Python")  # CREATE subscribes nothing (clients SUBSCRIBE)
    assert c.cmd("a1", 'LSUB "" Lists*') == [ok("a1")]
    assert c.cmd("a2", "SUBSCRIBE Lists/Python") == [ok("a2")]
    assert c.cmd("a2", 'LSUB "" Lists*') == [b'* LSUB () "/" "Lists/Python"', ok("a2")]
    assert c.cmd("a2", 'LSUB "" %') == [
        b'* LSUB () "/" "Archive"',
        b'* LSUB () "/" "Drafts"',
        b'* LSUB () "/" INBOX',
        b'* LSUB () "/" "Junk"',
        b'* LSUB (\\Noselect) "/" "Lists"',
        b'* LSUB () "/" "Sent"',
        b'* LSUB () "/" "Trash"',
        ok("a2"),
    ]
    assert c.cmd("a3", 'LIST (SUBSCRIBED) "" Lists*') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Lists/Python"',
        ok("a3"),
    ]
    assert c.cmd("a4", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" Lists') == [
        b'* LIST (\\HasChildren) "/" "Lists" ("CHILDINFO" ("SUBSCRIBED"))',
        ok("a4"),
    ]
    assert c.cmd("a5", "SUBSCRIBE Lists/Perl/") == [ok("a5")]  # no such folder
    assert c.cmd("a6", 'LSUB "" Lists/*') == [
        b'* LSUB (\\Noselect) "/" "Lists/Perl"',
        b'* LSUB () "/" "Lists/Python"',
        ok("a6"),
    ]
    refused = r.NO_CANNOT.with_text("folder name has a forbidden character")
    assert c.cmd("a7", 'SUBSCRIBE "bad*name"') == [ok("a7", refused)]


def test_subscription_outlives_its_folder(client):
    # RFC 9051 6.3.9, RFC 5258 3: the subscription stays, listed as \NonExistent.
    c = client()
    c.cmd("a0", "CREATE Old")
    c.cmd("a0", "CREATE Tree/Leaf")
    assert c.cmd("a1", "SUBSCRIBE Old") == [ok("a1")]
    assert c.cmd("a1", "SUBSCRIBE Tree/Leaf") == [ok("a1")]
    assert c.cmd("a2", "DELETE Old") == [ok("a2")]
    assert c.cmd("a3", 'LIST (SUBSCRIBED) "" *') == [
        b'* LIST (\\HasNoChildren \\Archive \\Subscribed) "/" "Archive"',
        b'* LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" "Drafts"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Junk \\Subscribed) "/" "Junk"',
        b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "Old"',
        b'* LIST (\\HasNoChildren \\Sent \\Subscribed) "/" "Sent"',
        b'* LIST (\\HasNoChildren \\Trash \\Subscribed) "/" "Trash"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Tree/Leaf"',
        ok("a3"),
    ]
    assert c.cmd("a4", 'LSUB "" O*') == [b'* LSUB (\\Noselect) "/" "Old"', ok("a4")]
    assert c.cmd("a5", 'LIST "" O*') == [ok("a5")]  # plain LIST: folders only
    # RECURSIVEMATCH: an unsubscribed parent of a subscribed child the pattern misses
    assert c.cmd("a6", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" T%') == [
        b'* LIST (\\HasNoChildren \\Trash \\Subscribed) "/" "Trash"',
        b'* LIST (\\HasChildren) "/" "Tree" ("CHILDINFO" ("SUBSCRIBED"))',
        ok("a6"),
    ]
    # a folder created again under the name is subscribed already; renaming moves it
    c.cmd("a7", "CREATE Old")
    assert c.cmd("a8", 'LSUB "" O*') == [b'* LSUB () "/" "Old"', ok("a8")]
    assert c.cmd("a9", "RENAME Tree Grove") == [ok("a9")]
    assert c.cmd("b1", 'LSUB "" *Leaf') == [b'* LSUB () "/" "Grove/Leaf"', ok("b1")]
    assert c.cmd("b2", "UNSUBSCRIBE Old") == [ok("b2")]
    assert c.cmd("b3", "UNSUBSCRIBE Never") == [ok("b3")]
    assert c.cmd("b4", 'LSUB "" O*') == [ok("b4")]


def test_list_extended_return_options(client):
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    c = client()
    assert c.cmd("a1", 'LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)') == [
        b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"',
        b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
        ok("a1"),
    ]
    assert c.cmd("a2", 'LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN SIZE))') == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b"* STATUS INBOX (MESSAGES 1 UNSEEN 1 SIZE %d)" % len(MESSAGE),
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        b'* STATUS "Sent" (MESSAGES 0 UNSEEN 0 SIZE 0)',
        ok("a2"),
    ]


def test_create_special_use(client, imap):
    c = client()
    assert c.cmd("a1", "CREATE MyTrash (USE (\\Trash))") == [created(imap, "a1", "MyTrash")]
    assert c.cmd("a2", 'LIST "" MyTrash') == [
        b'* LIST (\\HasNoChildren \\Trash) "/" "MyTrash"',
        ok("a2"),
    ]
    assert c.cmd("a3", "CREATE Odd (USE (\\Important))") == [ok("a3", r.NO_USE_ATTR)]


def test_namespace(client):
    c = client()
    assert c.cmd("a1", "NAMESPACE") == [
        b'* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared/" "/"))',
        ok("a1"),
    ]


def test_status_every_item(client, imap):
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    folder = selectors.folder_get(imap["mailbox"], "INBOX")
    c = client()
    lines = c.cmd(
        "a1",
        "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ DELETED)",
    )
    assert lines == [
        b"* STATUS INBOX (MESSAGES 1 RECENT 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 1 SIZE %d "
        b"HIGHESTMODSEQ %d DELETED 0)" % (folder.uidvalidity, len(MESSAGE), folder.highestmodseq),
        ok("a1"),
    ]
    assert c.cmd("a2", "STATUS Nope (MESSAGES)") == [ok("a2", r.NO_NONEXISTENT)]
    assert c.cmd("a3", "STATUS INBOX (BOGUS)")[0].startswith(b"a3 BAD")


def test_rename_selected_mailbox_keeps_it_selected(client):
    c = client()
    c.cmd("a0", "CREATE Work")
    c.cmd("a1", b"APPEND Work {%d+}\r\n" % len(MESSAGE) + MESSAGE)
    c.cmd("a2", "SELECT Work")
    assert c.cmd("a3", "RENAME Work Play") == [ok("a3")]
    assert c.cmd("a4", "FETCH 1 (UID)") == [b"* 1 FETCH (UID 1)", ok("a4")]
    assert c.cmd("a5", "STATUS Play (MESSAGES)") == [b'* STATUS "Play" (MESSAGES 1)', ok("a5")]

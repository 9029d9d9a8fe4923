"""Transcripts: GETQUOTA, GETQUOTAROOT, SETQUOTA, STATUS DELETED-STORAGE (RFC 9208), the
STORAGE and MESSAGE resources, and [OVERQUOTA] on APPEND, MULTIAPPEND, COPY and MOVE."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.models import Mailbox, Message
from protocols.imap import responses as r
from protocols.imap.commands.quota import NO_NO_SUCH_QUOTA_ROOT, NO_SETQUOTA
from tests.protocols.imap.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nSubject: hello\r\n\r\n" + b"x" * 3000 + b"\r\n"


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def append(c, tag: str, folder: str = "INBOX") -> list[bytes]:
    return c.cmd(tag, b"APPEND %s {%d+}\r\n" % (folder.encode(), len(MESSAGE)) + MESSAGE)


def set_quota(imap, octets: int, messages: int = 0) -> None:
    Mailbox.objects.filter(pk=imap["mailbox"].pk).update(quota=octets, quota_messages=messages)


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def stored(mailbox_id: int) -> tuple[int, int]:
    """(used_messages, message rows) of a mailbox: the counter and the truth."""
    mailbox = Mailbox.objects.get(pk=mailbox_id)
    return mailbox.used_messages, Message.objects.filter(folder__mailbox=mailbox).count()


def test_capability_and_no_limit(client, imap):
    c = client()
    caps = c.cmd("c1", "CAPABILITY")[0].split()
    # RFC 9208 3.1: both resources the server supports, whether or not a limit is set
    assert {b"QUOTA", b"QUOTA=RES-STORAGE", b"QUOTA=RES-MESSAGE"} <= set(caps)
    set_quota(imap, 0)
    assert c.cmd("q1", "GETQUOTAROOT INBOX") == [b"* QUOTAROOT INBOX", ok("q1")]
    assert c.cmd("q2", 'GETQUOTA ""') == [ok("q2", NO_NO_SUCH_QUOTA_ROOT)]


def test_getquota_and_overquota(client, imap):
    set_quota(imap, 10 * 1024)
    c = client()
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    used = len(MESSAGE) // 1024
    assert c.cmd("q1", "GETQUOTAROOT INBOX") == [
        b'* QUOTAROOT INBOX ""',
        b'* QUOTA "" (STORAGE %d 10)' % used,
        ok("q1"),
    ]
    assert c.cmd("q2", 'GETQUOTA ""') == [b'* QUOTA "" (STORAGE %d 10)' % used, ok("q2")]
    assert c.cmd("q3", "GETQUOTA other") == [ok("q3", NO_NO_SUCH_QUOTA_ROOT)]
    assert c.cmd("q4", "GETQUOTAROOT Nope") == [ok("q4", r.NO_NONEXISTENT)]
    assert c.cmd("q5", 'SETQUOTA "" (STORAGE 512)') == [ok("q5", NO_SETQUOTA)]
    assert c.cmd("q6", 'SETQUOTA "" STORAGE 512')[0].startswith(b"q6 BAD")
    # fill it: two more fit (3 x 3 KB), the fourth does not
    assert append(c, "a1")[-1].startswith(b"a1 OK")
    assert append(c, "a2")[-1].startswith(b"a2 OK")
    assert append(c, "a3") == [ok("a3", r.NO_OVER_QUOTA)]
    c.cmd("s1", "SELECT INBOX")
    assert c.cmd("c1", "COPY 1 Archive") == [ok("c1", r.NO_OVER_QUOTA)]
    # MOVE keeps the octets where they are (one mailbox): a full mailbox still moves
    assert c.cmd("m1", "MOVE 1 Archive")[-1].startswith(b"m1 OK")
    assert c.cmd("q7", "GETQUOTAROOT Archive") == [
        b'* QUOTAROOT "Archive" ""',
        b'* QUOTA "" (STORAGE %d 10)' % (3 * len(MESSAGE) // 1024),
        ok("q7"),
    ]
    c.cmd("f1", "STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("st", "STATUS INBOX (DELETED DELETED-STORAGE)") == [
        b"* STATUS INBOX (DELETED 2 DELETED-STORAGE %d)" % (2 * len(MESSAGE) // 1024),
        ok("st"),
    ]


def test_message_limit_only(client, imap):
    set_quota(imap, 0, messages=3)
    c = client()
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    assert c.cmd("q1", "GETQUOTAROOT INBOX") == [
        b'* QUOTAROOT INBOX ""',
        b'* QUOTA "" (MESSAGE 1 3)',
        ok("q1"),
    ]
    # every folder counts against the root
    assert append(c, "a1", "Archive")[-1].startswith(b"a1 OK")
    assert append(c, "a2")[-1].startswith(b"a2 OK")
    assert append(c, "a3", "Sent") == [ok("a3", r.NO_OVER_QUOTA)]
    assert c.cmd("q2", 'GETQUOTA ""') == [b'* QUOTA "" (MESSAGE 3 3)', ok("q2")]
    assert stored(imap["mailbox"].pk) == (3, 3)
    c.cmd("s1", "SELECT INBOX")
    assert c.cmd("c1", "COPY 1 Archive") == [ok("c1", r.NO_OVER_QUOTA)]
    # MOVE inside the mailbox adds no message: a full mailbox still moves (to Trash, say)
    assert c.cmd("m1", "MOVE 1 Trash")[-1].startswith(b"m1 OK")
    # \Deleted messages count until they are expunged (RFC 9208 5.2)
    c.cmd("f1", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert append(c, "a4") == [ok("a4", r.NO_OVER_QUOTA)]
    c.cmd("e1", "EXPUNGE")
    assert c.cmd("q3", 'GETQUOTA ""') == [b'* QUOTA "" (MESSAGE 2 3)', ok("q3")]
    assert append(c, "a5")[-1].startswith(b"a5 OK")
    assert stored(imap["mailbox"].pk) == (3, 3)


def test_both_limits(client, imap):
    set_quota(imap, 10 * 1024, messages=5)
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    c = client()
    expected = b'* QUOTA "" (STORAGE %d 10 MESSAGE 1 5)' % (len(MESSAGE) // 1024)
    assert c.cmd("q1", "GETQUOTAROOT Archive") == [
        b'* QUOTAROOT "Archive" ""',
        expected,
        ok("q1"),
    ]
    assert c.cmd("q2", 'GETQUOTA ""') == [expected, ok("q2")]
    assert c.cmd("q3", 'SETQUOTA "" (MESSAGE 10)') == [ok("q3", NO_SETQUOTA)]


def test_multiappend_beyond_the_message_limit_stores_none(client, imap):
    set_quota(imap, 0, messages=2)
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    c = client()
    command = b"APPEND INBOX " + literal(MESSAGE) + b" " + literal(MESSAGE)
    assert c.cmd("a1", command) == [ok("a1", r.NO_OVER_QUOTA)]
    assert stored(imap["mailbox"].pk) == (1, 1)
    assert c.cmd("st", "STATUS INBOX (MESSAGES UIDNEXT)") == [
        b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2)",
        ok("st"),
    ]
    assert c.cmd("a2", b"APPEND INBOX " + literal(MESSAGE))[-1].startswith(b"a2 OK")


def test_copy_and_move_into_a_full_shared_folder(client, imap, make_mailbox):
    """Into another mailbox's folder the messages count against that mailbox's limit."""
    alice = imap["mailbox"]
    set_quota(imap, 0, messages=1)
    make_mailbox("bob@example.org", PASSWORD)
    services.folder_acl_set(
        folder=selectors.folder_get(alice.id, "Archive"),
        identifier="bob@example.org",
        rights="lri",
    )
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org", "bob@example.org"])
    bob = client(login=False)
    bob.login("bob@example.org", PASSWORD)
    bob.cmd("s1", "SELECT INBOX")
    shared = '"Other Users/alice@example.org/Archive"'
    assert bob.cmd("c1", f"COPY 1 {shared}") == [ok("c1", r.NO_OVER_QUOTA)]
    assert bob.cmd("m1", f"MOVE 1 {shared}") == [ok("m1", r.NO_OVER_QUOTA)]
    assert stored(alice.pk) == (1, 1)
    bob_id = selectors.mailbox_get("bob@example.org").pk
    assert stored(bob_id) == (1, 1)
    set_quota(imap, 0, messages=2)
    assert bob.cmd("m2", f"MOVE 1 {shared}")[-1].startswith(b"m2 OK")
    assert stored(alice.pk) == (2, 2) and stored(bob_id) == (0, 0)


def test_a_shared_folder_counts_against_its_owner_root(client, imap, make_mailbox):
    """GETQUOTAROOT on another's folder names the owner's root (its address) with the owner's
    usage, the root GETQUOTA then answers; a root with no folder shared with the session, and
    a shared name the session cannot see, stay unknown."""
    alice = imap["mailbox"]
    set_quota(imap, 10 * 1024, messages=5)
    make_mailbox("bob@example.org", PASSWORD)
    make_mailbox("carol@example.org", PASSWORD)
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    services.folder_acl_set(
        folder=selectors.folder_get(alice.id, "Archive"),
        identifier="bob@example.org",
        rights="lr",
    )
    bob = client(login=False)
    bob.login("bob@example.org", PASSWORD)
    used = len(MESSAGE) // 1024
    alice_quota = b'* QUOTA "alice@example.org" (STORAGE %d 10 MESSAGE 1 5)' % used
    assert bob.cmd("q1", 'GETQUOTAROOT "Other Users/ALICE@example.org/Archive"') == [
        b'* QUOTAROOT "Other Users/ALICE@example.org/Archive" "alice@example.org"',
        alice_quota,
        ok("q1"),
    ]
    assert bob.cmd("q2", "GETQUOTA alice@example.org") == [alice_quota, ok("q2")]
    # bob's own root has no limit; alice's INBOX is not shared with bob
    assert bob.cmd("q3", "GETQUOTAROOT INBOX") == [b"* QUOTAROOT INBOX", ok("q3")]
    assert bob.cmd("q4", 'GETQUOTAROOT "Other Users/alice@example.org/INBOX"') == [
        ok("q4", r.NO_NONEXISTENT)
    ]
    carol = client(login=False)
    carol.login("carol@example.org", PASSWORD)
    assert carol.cmd("q5", "GETQUOTA alice@example.org") == [ok("q5", NO_NO_SUCH_QUOTA_ROOT)]
    assert carol.cmd("q6", 'GETQUOTAROOT "Other Users/alice@example.org/Archive"') == [
        ok("q6", r.NO_NONEXISTENT)
    ]

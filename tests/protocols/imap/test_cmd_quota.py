"""Transcripts: GETQUOTA, GETQUOTAROOT, SETQUOTA, STATUS DELETED-STORAGE (RFC 9208), and
[OVERQUOTA] on APPEND and COPY."""

from __future__ import annotations

import pytest

from mailboxes import services
from mailboxes.models import Mailbox
from protocols.imap import responses as r
from protocols.imap.commands.quota import NO_NO_SUCH_QUOTA_ROOT, NO_SETQUOTA

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nSubject: hello\r\n\r\n" + b"x" * 3000 + b"\r\n"


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def append(c, tag: str, folder: str = "INBOX") -> list[bytes]:
    return c.cmd(tag, b"APPEND %s {%d+}\r\n" % (folder.encode(), len(MESSAGE)) + MESSAGE)


def set_quota(imap, octets: int) -> None:
    Mailbox.objects.filter(pk=imap["mailbox"].pk).update(quota=octets)


def test_capability_and_no_limit(client, imap):
    c = client()
    caps = c.cmd("c1", "CAPABILITY")[0].split()
    assert b"QUOTA" in caps and b"QUOTA=RES-STORAGE" in caps
    assert b"QUOTA=RES-MESSAGE" not in caps  # no message-count limit exists
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

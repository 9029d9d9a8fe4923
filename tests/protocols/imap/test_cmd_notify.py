"""Transcripts: NOTIFY (RFC 5465) over the change events: STATUS for folders not selected,
MailboxName, SubscriptionChange, MailboxMetadataChange, MessageNew's FETCH attributes in the
selected folder, NOTIFY NONE; and a delivery in another process (Redis) waking it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from mailboxes import selectors, services
from protocols.imap import responses as r
from tests.protocols.imap.conftest import deliver_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: ping\r\n\r\nHi.\r\n"


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def idle(c, tag: str = "i1") -> None:
    c.send(f"{tag} IDLE\r\n")
    assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")


def done(c, tag: str = "i1") -> None:
    c.send("DONE\r\n")
    assert c.until(tag) == [ok(tag, r.OK_IDLE_DONE)]


def uidvalidity(name: str) -> int:
    return selectors.folder_get(selectors.mailbox_get("alice@example.org").id, name).uidvalidity


def highestmodseq(name: str) -> int:
    folder = selectors.folder_get(selectors.mailbox_get("alice@example.org").id, name)
    return folder.highestmodseq


def test_capability_and_syntax(client):
    c = client()
    assert b"NOTIFY" in c.cmd("c1", "CAPABILITY")[0].split()
    assert c.cmd("n1", "NOTIFY SET (INBOXES (MessageNew MessageExpunge))") == [ok("n1")]
    assert c.cmd("n2", "NOTIFY NONE") == [ok("n2")]
    # MessageNew alone is taken, as Dovecot does (its imaptest script relies on it)
    assert c.cmd("n3", "NOTIFY SET (INBOXES (MessageNew))") == [ok("n3")]
    bad = c.cmd("n4", "NOTIFY SET (INBOXES (NoSuchEvent))")[0]
    assert bad.startswith(b"n4 NO [BADEVENT (MessageNew MessageExpunge FlagChange")
    assert c.cmd("n5", "NOTIFY SET (ELSEWHERE (MessageNew MessageExpunge))")[0].startswith(
        b"n5 BAD"
    )


def test_delivery_to_a_folder_not_selected_gives_status_during_idle(client):
    c = client()
    c.cmd("s1", "SELECT Archive")
    assert c.cmd("n1", "NOTIFY SET STATUS (INBOXES (MessageNew MessageExpunge))") == [
        b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY %d)" % uidvalidity("INBOX"),
        ok("n1"),
    ]
    idle(c)
    deliver_in_thread(MESSAGE, "alice@example.org")
    assert c.line() == (
        b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)" % uidvalidity("INBOX")
    )
    done(c)
    # NOTIFY NONE: nothing more
    assert c.cmd("n2", "NOTIFY NONE") == [ok("n2")]
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    assert c.cmd("n3", "NOOP") == [ok("n3", r.OK_NOOP)]


def test_flag_change_and_expunge_in_a_personal_folder(client):
    services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])
    watcher, actor = client(), client()
    watcher.cmd("n1", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange))")
    actor.cmd("s1", "SELECT INBOX")
    actor.cmd("t1", "STORE 1 +FLAGS.SILENT (\\Seen)")
    status = b"* STATUS INBOX (MESSAGES %d UIDNEXT 2 UIDVALIDITY %d HIGHESTMODSEQ %d)"
    assert watcher.cmd("n2", "NOOP") == [
        status % (1, uidvalidity("INBOX"), highestmodseq("INBOX")),
        ok("n2", r.OK_NOOP),
    ]
    actor.cmd("t2", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    actor.cmd("e1", "EXPUNGE")
    lines = watcher.cmd("n3", "NOOP")
    expected = status % (0, uidvalidity("INBOX"), highestmodseq("INBOX"))
    assert lines[-2:] == [expected, ok("n3", r.OK_NOOP)]


def test_mailbox_name_and_subscription_change(client):
    watcher, actor = client(), client()
    watcher.cmd("n1", "NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
    idle(watcher)
    actor.cmd("c1", "CREATE Projects")
    assert watcher.line() == b'* LIST () "/" "Projects"'
    actor.cmd("c2", "SUBSCRIBE Projects")
    assert watcher.line() == b'* LIST (\\Subscribed) "/" "Projects"'
    actor.cmd("c3", "RENAME Projects Work")
    assert watcher.line() == b'* LIST () "/" "Work" ("OLDNAME" ("Projects"))'
    actor.cmd("c4", "DELETE Work")
    assert watcher.line() == b'* LIST (\\NonExistent) "/" "Work"'
    done(watcher)


def test_metadata_change(client):
    watcher, actor = client(), client()
    watcher.cmd("n1", "NOTIFY SET (PERSONAL (MailboxMetadataChange ServerMetadataChange))")
    idle(watcher)
    actor.cmd("m1", 'SETMETADATA Archive (/shared/comment "old mail")')
    assert watcher.line() == b'* METADATA "Archive" /shared/comment'
    actor.cmd("m2", 'SETMETADATA "" (/private/note "x")')
    assert watcher.line() == b'* METADATA "" /private/note'
    done(watcher)


def test_message_new_with_fetch_attributes_in_the_selected_folder(client):
    c = client()
    c.cmd("s1", "SELECT INBOX")
    c.cmd(
        "n1",
        "NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) "
        "MessageExpunge)) (INBOXES (MessageNew MessageExpunge))",
    )
    idle(c)
    deliver_in_thread(MESSAGE, "alice@example.org")
    assert c.line() == b"* 1 EXISTS"
    assert c.line() == b"* 1 RECENT"
    assert c.line() == b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT)] {17}"
    assert c.read_exact(17) == b"Subject: ping\r\n\r\n"
    assert c.line() == b")"
    done(c)


def test_a_shared_folder_of_another_mailbox(client, make_mailbox):
    from tests.protocols.imap.conftest import PASSWORD

    make_mailbox("bob@example.org", PASSWORD)
    alice_id = selectors.mailbox_get("alice@example.org").id
    archive = selectors.folder_get(alice_id, "Archive")
    services.folder_acl_set(folder=archive, identifier="bob@example.org", rights="lr")
    bob = client(login=False)
    bob.login("bob@example.org", PASSWORD)
    shared = b'"Other Users/alice@example.org/Archive"'
    bob.cmd("n1", 'NOTIFY SET (SUBTREE "Other Users" (MessageNew MessageExpunge))')
    idle(bob)
    services.message_append(folder=archive, raw=MESSAGE, flags=[])
    assert bob.line() == b"* STATUS %s (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)" % (
        shared,
        archive.uidvalidity,
    )
    done(bob)


DELIVER = """
import time, django
django.setup()
from mailboxes import services
services.message_deliver(raw=b"Subject: x\\r\\n\\r\\nhi\\r\\n", recipients=["alice@example.org"])
"""


@pytest.mark.skipif(not settings.REDIS_URL, reason="change events cross processes via Redis")
def test_notify_woken_by_delivery_in_another_process(client, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the other process needs the same server database")
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    c = client()
    c.cmd("s1", "SELECT Archive")
    c.cmd("n1", "NOTIFY SET (INBOXES (MessageNew MessageExpunge))")
    idle(c)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MAILHOST_DATA_DIR": str(tmp_path / "other"),
        "DJANGO_SETTINGS_MODULE": "mailhost.settings",
    }
    root = Path(__file__).resolve().parents[3]
    other = subprocess.run([sys.executable, "-c", DELIVER], env=env, cwd=root, timeout=60)
    assert other.returncode == 0
    assert c.line() == (
        b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)" % uidvalidity("INBOX")
    )
    done(c)


def test_notifications_between_commands_without_idle(client):
    c = client()
    c.cmd("s1", "SELECT Archive")
    c.cmd(
        "n1",
        "NOTIFY SET (INBOXES (MessageNew MessageExpunge)) (SELECTED (MessageNew MessageExpunge))",
    )
    started = time.monotonic()
    deliver_in_thread(MESSAGE, "alice@example.org")
    # no command sent: RFC 5465 lets the server say it at once
    assert c.line() == b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d)" % uidvalidity(
        "INBOX"
    )
    assert time.monotonic() - started < 2.0
    assert c.cmd("n2", "NOOP") == [ok("n2", r.OK_NOOP)]

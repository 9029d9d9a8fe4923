"""Transcripts: SELECT EXAMINE CLOSE UNSELECT CHECK, CONDSTORE and QRESYNC."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r
from tests.protocols.imap.conftest import deliver_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: bob@example.net\r\nSubject: hello\r\n\r\nHi.\r\n"
FLAGS = b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $MDNSent $NotJunk $Phishing)"


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def deliver(n: int = 1) -> None:
    for _ in range(n):
        services.message_deliver(raw=MESSAGE, recipients=["alice@example.org"])


def inbox(imap):
    return selectors.folder_get(imap["mailbox"], "INBOX")


def test_select_reports_counters_recent_and_unseen(client, imap):
    deliver(3)
    folder = inbox(imap)
    c = client()
    assert c.cmd("a1", "SELECT INBOX") == [
        FLAGS,
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
        b"* 3 EXISTS",
        b"* 3 RECENT",
        b"* OK [UNSEEN 1] First unseen",
        b"* OK [UIDVALIDITY %d] UIDs valid" % folder.uidvalidity,
        b"* OK [UIDNEXT 4] Predicted next UID",
        b"* OK [HIGHESTMODSEQ %d] Highest" % folder.highestmodseq,
        b"* OK [MAILBOXID (F%d)] Ok" % folder.id,
        ok("a1", r.OK_SELECT_RW),
    ]
    # \Recent belongs to the first session only (RFC 3501 2.3.2).
    other = client()
    lines = other.cmd("b1", "SELECT INBOX")
    assert b"* 0 RECENT" in lines


def test_examine_is_read_only_and_claims_no_recent(client, imap):
    deliver(1)
    c = client()
    lines = c.cmd("a1", "EXAMINE INBOX")
    assert b"* OK [PERMANENTFLAGS ()] No permanent flags permitted" in lines
    assert b"* 1 RECENT" in lines and lines[-1] == ok("a1", r.OK_EXAMINE_RO)
    assert c.cmd("a2", "STORE 1 +FLAGS (\\Seen)") == [ok("a2", r.NO_READ_ONLY)]
    assert c.cmd("a3", "EXPUNGE") == [ok("a3", r.NO_READ_ONLY)]
    assert c.cmd("a4", "FETCH 1 BODY[TEXT]")[0] == b"* 1 FETCH (BODY[TEXT] {5}\r\nHi.\r\n)"
    assert not selectors.messages_in(inbox(imap)).get().seen  # EXAMINE never sets \Seen


def test_mail_arriving_while_an_update_reads_is_recent_in_the_session_announcing_it(
    client, monkeypatch
):
    # imaptest's checkpoint found messages \Recent in no session: an update read the changes
    # (message 1), a message arrived, and the update's claim took the folder's UIDNEXT,
    # message 2 included, which the next update then announced without \Recent.
    c = client()
    c.cmd("a1", "SELECT INBOX")
    read = selectors.folder_changes_since
    arrivals = [MESSAGE]

    def read_then_one_arrives(*args, **kwargs):
        changes = read(*args, **kwargs)
        if arrivals and changes and changes[1]:
            deliver_in_thread(arrivals.pop(), "alice@example.org").join()
        return changes

    monkeypatch.setattr(selectors, "folder_changes_since", read_then_one_arrives)
    deliver(1)
    assert c.cmd("a2", "NOOP")[:2] == [b"* 1 EXISTS", b"* 1 RECENT"]
    assert not arrivals
    assert c.cmd("a3", "NOOP")[:2] == [b"* 2 EXISTS", b"* 2 RECENT"]
    assert c.cmd("a4", "FETCH 2 FLAGS")[0] == b"* 2 FETCH (FLAGS (\\Recent))"
    other = client()
    assert b"* 0 RECENT" in other.cmd("b1", "SELECT INBOX")


def test_select_nonexistent_leaves_selected_state(client):
    c = client()
    c.cmd("a1", "SELECT INBOX")
    assert c.cmd("a2", "SELECT Nope") == [
        line(r.OK_CLOSED.untagged()),
        ok("a2", r.NO_NONEXISTENT),
    ]
    assert c.cmd("a3", "FETCH 1 FLAGS") == [ok("a3", r.BAD_NOT_SELECTED)]


def line(data: bytes) -> bytes:
    return data.rstrip(b"\r\n")


def test_close_expunges_unselect_does_not(client, imap):
    deliver(2)
    c = client()
    c.cmd("a1", "SELECT INBOX")
    c.cmd("a2", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("a3", "UNSELECT") == [ok("a3")]
    assert inbox(imap).message_count == 2
    c.cmd("a4", "SELECT INBOX")
    assert c.cmd("a5", "CHECK") == [ok("a5")]
    assert c.cmd("a6", "CLOSE") == [ok("a6")]  # no untagged EXPUNGE (RFC 9051 6.4.1)
    assert inbox(imap).message_count == 1
    assert c.cmd("a7", "CLOSE") == [ok("a7", r.BAD_NOT_SELECTED)]


def test_condstore_select_and_fetch_modseq(client, imap):
    deliver(2)
    c = client()
    lines = c.cmd("a1", "SELECT INBOX (CONDSTORE)")
    highest = inbox(imap).highestmodseq
    assert b"* OK [HIGHESTMODSEQ %d] Highest" % highest in lines
    lines = c.cmd("a2", "STORE 2 +FLAGS (\\Flagged)")
    assert lines == [
        b"* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))" % (highest + 1),
        ok("a2"),
    ]
    assert c.cmd("a3", f"FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})") == [
        b"* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))" % (highest + 1),
        ok("a3"),
    ]


def test_qresync_select_reports_vanished_and_changes(client, imap):
    deliver(3)
    folder = inbox(imap)
    base = folder.highestmodseq
    services.messages_store_flags(folder=folder, uids=[1], flags=["\\Deleted"], mode="add")
    services.messages_expunge(folder=folder)
    services.messages_store_flags(folder=folder, uids=[3], flags=["\\Seen"], mode="add")
    folder = inbox(imap)
    c = client()
    assert c.cmd("a1", "SELECT INBOX (QRESYNC (1 1))") == [ok("a1", r.BAD_CONDSTORE_OFF)]
    c.cmd("a2", "ENABLE QRESYNC")
    lines = c.cmd("a3", f"SELECT INBOX (QRESYNC ({folder.uidvalidity} {base} 1:3))")
    assert b"* VANISHED (EARLIER) 1" in lines
    assert b"* 2 FETCH (UID 3 FLAGS (\\Seen \\Recent) MODSEQ (%d))" % folder.highestmodseq in lines
    assert lines[-1] == ok("a3", r.OK_SELECT_RW)
    # QRESYNC replaces EXPUNGE with VANISHED.
    c.cmd("a4", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("a5", "EXPUNGE") == [b"* VANISHED 2", b"* 1 RECENT", ok("a5")]


def test_silent_store_under_qresync_reports_the_uid_with_the_modseq(client, imap):
    # RFC 7162 3.2.4: with QRESYNC every FETCH the client did not ask for carries the UID;
    # .SILENT's MODSEQ-only FETCH had none (imaptest: "FETCH didn't return UID while QRESYNC
    # was enabled: * 4 FETCH (MODSEQ (301))").
    deliver(2)
    c = client()
    c.cmd("a1", "ENABLE QRESYNC")
    c.cmd("a2", "SELECT INBOX")
    highest = inbox(imap).highestmodseq
    assert c.cmd("a3", "STORE 2 +FLAGS.SILENT (\\Seen)") == [
        b"* 2 FETCH (UID 2 MODSEQ (%d))" % (highest + 1),
        ok("a3"),
    ]
    # CONDSTORE alone: the MODSEQ, no UID (a STORE by sequence number)
    other = client()
    other.cmd("b1", "SELECT INBOX (CONDSTORE)")
    assert other.cmd("b2", "STORE 1 +FLAGS.SILENT (\\Seen)") == [
        b"* 1 FETCH (MODSEQ (%d))" % (highest + 2),
        ok("b2"),
    ]


def test_select_another_mailbox_sends_closed(client):
    c = client()
    c.cmd("a1", "SELECT INBOX")
    lines = c.cmd("a2", "EXAMINE Sent")
    assert lines[0] == line(r.OK_CLOSED.untagged())
    assert lines[-1] == ok("a2", r.OK_EXAMINE_RO)


# --- SELECT reads no sequence map: the first command that needs one reads the view the
# client was told of at SELECT (protocols/imap/uidcache.py) ---------------------------------


def test_unseen_is_numbered_from_the_nearer_end(client, imap):
    deliver(10)
    folder = inbox(imap)
    services.messages_store_flags(folder=folder, uids=range(1, 9), flags=["\\Seen"], mode="add")
    services.messages_store_flags(folder=folder, uids=[3, 5], flags=["\\Deleted"], mode="add")
    services.messages_expunge(folder=folder)
    c = client()
    lines = c.cmd("a1", "SELECT INBOX")
    assert b"* 8 EXISTS" in lines and b"* OK [UNSEEN 7] First unseen" in lines
    services.messages_store_flags(folder=folder, uids=[2], flags=["\\Seen"], mode="remove")
    lines = c.cmd("a2", "SELECT INBOX")
    assert b"* OK [UNSEEN 2] First unseen" in lines


def test_expunged_elsewhere_before_first_use_keeps_select_time_numbers(client):
    deliver(5)
    watcher, actor = client(), client()
    assert b"* 5 EXISTS" in watcher.cmd("w1", "SELECT INBOX")
    actor.cmd("x1", "SELECT INBOX")
    actor.cmd("x2", "STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    actor.cmd("x3", "EXPUNGE")
    # No EXPUNGE during FETCH (RFC 9051 7.5.1): the numbers are those of SELECT time.
    assert watcher.cmd("w2", "FETCH 1:* (UID)") == [
        b"* 1 FETCH (UID 1)",
        b"* 3 FETCH (UID 3)",
        b"* 5 FETCH (UID 5)",
        ok("w2"),
    ]
    assert watcher.cmd("w3", "NOOP") == [
        b"* 4 EXPUNGE",
        b"* 2 EXPUNGE",
        b"* 3 RECENT",
        ok("w3", r.OK_NOOP),
    ]
    assert watcher.cmd("w4", "FETCH 1:* (UID)") == [
        b"* 1 FETCH (UID 1)",
        b"* 2 FETCH (UID 3)",
        b"* 3 FETCH (UID 5)",
        ok("w4"),
    ]


def test_new_mail_before_first_use_then_an_expunge(client):
    deliver(3)
    watcher, actor = client(), client()
    assert b"* 3 RECENT" in watcher.cmd("w1", "SELECT INBOX")
    deliver(1)
    assert watcher.cmd("w2", "NOOP") == [b"* 4 EXISTS", b"* 4 RECENT", ok("w2", r.OK_NOOP)]
    actor.cmd("x1", "SELECT INBOX")
    actor.cmd("x2", "UID STORE 1,4 +FLAGS.SILENT (\\Deleted)")
    actor.cmd("x3", "EXPUNGE")
    deliver(1)
    assert watcher.cmd("w3", "NOOP") == [
        b"* 4 EXPUNGE",
        b"* 1 EXPUNGE",
        b"* 2 RECENT",
        b"* 3 EXISTS",
        b"* 3 RECENT",
        ok("w3", r.OK_NOOP),
    ]
    assert watcher.cmd("w4", "UID SEARCH RECENT") == [b"* SEARCH 2 3 5", ok("w4")]


def test_uid_search_as_first_use_sees_an_expunge_only_at_its_end(client):
    deliver(3)
    watcher, actor = client(), client()
    watcher.cmd("w1", "SELECT INBOX")
    actor.cmd("x1", "SELECT INBOX")
    actor.cmd("x2", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    actor.cmd("x3", "EXPUNGE")
    assert watcher.cmd("w2", "SEARCH ALL") == [b"* SEARCH 2 3", ok("w2", r.OK_EXPUNGE_ISSUED)]
    assert watcher.cmd("w3", "UID SEARCH ALL") == [
        b"* SEARCH 2 3",
        b"* 1 EXPUNGE",
        b"* 2 RECENT",
        ok("w3", r.OK_EXPUNGE_ISSUED),
    ]

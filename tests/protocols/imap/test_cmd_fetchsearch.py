"""Transcripts: the engine side of FETCH and SEARCH (\\Seen, sequence sets, CHANGEDSINCE,
VANISHED, ESEARCH, SEARCHRES). Item rendering is tested in test_fetch*.py / test_mime*.py."""

from __future__ import annotations

import time

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r
from tests.support.hops import counting_pool

pytestmark = pytest.mark.django_db(transaction=True)


def message(n: int) -> bytes:
    return b"From: bob@example.net\r\nSubject: note %d\r\n\r\nBody %d.\r\n" % (n, n)


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


@pytest.fixture
def three(imap):
    for n in (1, 2, 3):
        services.message_deliver(raw=message(n), recipients=["alice@example.org"])
    return selectors.folder_get(imap["mailbox"], "INBOX")


def test_body_sets_seen_peek_does_not(client, three):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    assert c.cmd("a1", "FETCH 1 BODY.PEEK[TEXT]") == [
        b"* 1 FETCH (BODY[TEXT] {9}\r\nBody 1.\r\n)",
        ok("a1"),
    ]
    assert c.cmd("a2", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))", ok("a2")]
    assert c.cmd("a3", "FETCH 1 BODY[TEXT]") == [
        b"* 1 FETCH (BODY[TEXT] {9}\r\nBody 1.\r\n FLAGS (\\Seen \\Recent))",
        ok("a3"),
    ]
    assert c.cmd("a4", "UID FETCH 2 RFC822.HEADER") == [
        b"* 2 FETCH (UID 2 RFC822.HEADER {42}\r\nFrom: bob@example.net\r\nSubject: note 2\r\n\r\n)",
        ok("a4"),
    ]
    assert c.cmd("a5", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS (\\Recent))", ok("a5")]


def test_fetch_sequence_forms(client, three):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    assert c.cmd("a1", "FETCH 2:* UID") == [
        b"* 2 FETCH (UID 2)",
        b"* 3 FETCH (UID 3)",
        ok("a1"),
    ]
    assert c.cmd("a2", "FETCH 3,1 (UID RFC822.SIZE)") == [
        b"* 1 FETCH (UID 1 RFC822.SIZE %d)" % len(message(1)),
        b"* 3 FETCH (UID 3 RFC822.SIZE %d)" % len(message(3)),
        ok("a2"),
    ]
    assert c.cmd("a3", "UID FETCH 5:* FLAGS") == [b"* 3 FETCH (UID 3 FLAGS (\\Recent))", ok("a3")]
    assert c.cmd("a4", "FETCH 4 FLAGS") == [ok("a4", r.BAD_INVALID_SEQUENCE)]
    assert c.cmd("a5", "FETCH 1 (BOGUS)")[0].startswith(b"a5 BAD")


def test_flags_fetch_every_flag_in_item_order(client, three):
    services.messages_store_flags(
        folder=three, uids=[1], flags=["\\Seen", "\\Answered", "$Done"], mode="add"
    )
    services.messages_store_flags(
        folder=three, uids=[3], flags=["\\Flagged", "\\Deleted", "\\Draft"], mode="add"
    )
    c = client()
    c.cmd("a0", "SELECT INBOX")
    lines = c.cmd("a1", "FETCH 1:* (UID MODSEQ FLAGS)")
    modseqs = [row[1] for row in selectors.message_flag_rows(three)]
    assert lines == [
        b"* 1 FETCH (UID 1 MODSEQ (%d) FLAGS (\\Seen \\Answered $Done \\Recent))" % modseqs[0],
        b"* 2 FETCH (UID 2 MODSEQ (%d) FLAGS (\\Recent))" % modseqs[1],
        b"* 3 FETCH (UID 3 MODSEQ (%d) FLAGS (\\Flagged \\Deleted \\Draft \\Recent))" % modseqs[2],
        # MODSEQ enabled CONDSTORE (RFC 7162 3.1): HIGHESTMODSEQ is announced once.
        b"* OK [HIGHESTMODSEQ %d] Highest" % selectors.folder_highestmodseq(three.id),
        ok("a1"),
    ]


def test_changedsince_and_vanished(client, three):
    c = client()
    c.cmd("a0", "ENABLE QRESYNC")
    c.cmd("a1", "SELECT INBOX")
    base = three.highestmodseq
    c.cmd("a2", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    c.cmd("a3", "EXPUNGE")
    c.cmd("a4", "STORE 1 +FLAGS.SILENT ($Done)")
    lines = c.cmd("a5", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 3"
    assert lines[1].startswith(b"* 1 FETCH (UID 1 FLAGS ($Done \\Recent) MODSEQ (")
    assert lines[2] == ok("a5")


def test_search_plain_uid_esearch_and_save(client, three):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    c.cmd("a1", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert c.cmd("a2", "SEARCH ALL") == [b"* SEARCH 1 2 3", ok("a2")]
    assert c.cmd("a3", "SEARCH FLAGGED") == [b"* SEARCH 2", ok("a3")]
    assert c.cmd("a4", 'UID SEARCH SUBJECT "note 3"') == [b"* SEARCH 3", ok("a4")]
    assert c.cmd("a5", "SEARCH RETURN (MIN MAX COUNT ALL) UNFLAGGED") == [
        b'* ESEARCH (TAG "a5") MIN 1 MAX 3 COUNT 2 ALL 1,3',
        ok("a5"),
    ]
    assert c.cmd("a6", 'SEARCH RETURN (SAVE) BODY "Body 3"') == [ok("a6")]
    assert c.cmd("a7", "FETCH $ (UID)") == [b"* 3 FETCH (UID 3)", ok("a7")]
    assert c.cmd("a8", "SEARCH CHARSET X-NO-SUCH-CHARSET ALL") == [ok("a8", r.NO_BAD_CHARSET)]
    assert c.cmd("a9", "SEARCH FROBBED")[0].startswith(b"a9 BAD")


def test_search_after_an_expunge_elsewhere_says_expungeissued(client, three):
    # imaptest: "SEARCH result missing seq 4": a message expunged by another session is still
    # in this session's view (no EXPUNGE during SEARCH), the search no longer sees it, and
    # the reply did not say so (RFC 5530 3: EXPUNGEISSUED).
    c, other = client(), client()
    c.cmd("a0", "SELECT INBOX")
    other.cmd("b0", "SELECT INBOX")
    other.cmd("b1", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.cmd("b2", "EXPUNGE")
    lines = c.cmd("a1", "SEARCH 1:3")
    assert b"* SEARCH 1 3" in lines and lines[-1] == ok("a1", r.OK_EXPUNGE_ISSUED)
    assert b"* 2 EXPUNGE" in c.cmd("a2", "NOOP")
    assert c.cmd("a3", "SEARCH 1:2") == [b"* SEARCH 1 2", ok("a3")]


def test_imap4rev2_search_answers_with_esearch(client, three):
    c = client()
    c.cmd("a0", "ENABLE IMAP4rev2")
    lines = c.cmd("a1", "SELECT INBOX")
    assert not any(line.endswith(b"RECENT") for line in lines)
    assert b'* LIST () "/" INBOX' in lines
    assert c.cmd("a2", "SEARCH ALL") == [b'* ESEARCH (TAG "a2") ALL 1:3', ok("a2")]


@pytest.fixture
def hops(monkeypatch):
    from protocols.imap import worker

    return counting_pool(monkeypatch, worker, "_db_executor")


def test_a_rendered_fetch_reads_rows_renders_and_reads_the_changes_in_one_hop(client, three, hops):
    # The rows, the rendering, what another session changed meanwhile and the \\Recent claim
    # of its arrival: one hop from the event loop (four before), the same responses.
    c, other = client(), client()
    c.cmd("a0", "SELECT INBOX")
    c.cmd("a1", "FETCH 1:3 FLAGS")  # the sequence map is read
    other.cmd("b1", b"APPEND INBOX {%d+}\r\n" % len(message(4)) + message(4))
    time.sleep(0.3)  # the change event reaches the session
    hops.hops = 0
    assert c.cmd("a2", "FETCH 2 (RFC822.SIZE BODY.PEEK[TEXT])") == [
        b"* 2 FETCH (RFC822.SIZE 51 BODY[TEXT] {9}\r\nBody 2.\r\n)",
        b"* 4 EXISTS",
        b"* 4 RECENT",
        ok("a2"),
    ]
    assert hops.hops == 1


def test_status_reads_in_one_hop(client, three, hops):
    c = client()
    hops.hops = 0
    assert c.cmd("a1", "STATUS INBOX (MESSAGES RECENT)") == [
        b"* STATUS INBOX (MESSAGES 3 RECENT 3)",
        ok("a1"),
    ]
    assert hops.hops == 1


def test_the_first_fetch_after_select_reads_the_map_in_the_rows_hop(client, three, hops):
    # The sequence map, the rows and the rendering in one hop (two before); the messages
    # SELECT claimed \\Recent show it in this very FETCH, before the map is installed.
    c = client()
    c.cmd("a0", "SELECT INBOX")
    hops.hops = 0
    assert c.cmd("a1", "FETCH 2:3 (FLAGS BODY.PEEK[TEXT])") == [
        b"* 2 FETCH (FLAGS (\\Recent) BODY[TEXT] {9}\r\nBody 2.\r\n)",
        b"* 3 FETCH (FLAGS (\\Recent) BODY[TEXT] {9}\r\nBody 3.\r\n)",
        ok("a1"),
    ]
    assert hops.hops == 1
    assert c.cmd("a2", "FETCH 4 UID") == [b"a2 BAD Invalid message sequence number"]
    other = client()  # a sequence number past the end, found in that hop
    other.cmd("b0", "SELECT INBOX")
    assert other.cmd("b1", "FETCH 4 BODY.PEEK[TEXT]") == [b"b1 BAD Invalid message sequence number"]
    assert other.cmd("b2", "FETCH 3 RFC822.SIZE") == [b"* 3 FETCH (RFC822.SIZE 51)", ok("b2")]

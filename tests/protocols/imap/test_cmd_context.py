"""Transcripts: CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 4): RETURN (UPDATE) keeps a result
live with ESEARCH ADDTO/REMOVEFROM, CANCELUPDATE ends it; PARTIAL in SEARCH RETURN."""

from __future__ import annotations

import re

import pytest

from protocols.imap import responses as r
from tests.protocols.imap.conftest import deliver_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def raw(subject: str) -> bytes:
    return f"From: bob@example.net\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def deliver(*subjects: str) -> None:
    for subject in subjects:
        deliver_in_thread(raw(subject), "alice@example.org").join()


def test_capabilities(client):
    caps = client().cmd("c1", "CAPABILITY")[0].split()
    assert b"CONTEXT=SEARCH" in caps
    assert b"CONTEXT=SORT" in caps
    assert b"ESORT" in caps


def test_search_update_follows_flags_arrivals_and_expunges(client, imap):
    deliver("one", "two", "three")
    c, other = client(), client()
    c.cmd("s0", "SELECT INBOX")
    other.cmd("o0", "SELECT INBOX")
    assert c.cmd("s1", "UID SEARCH RETURN (COUNT UPDATE) UNSEEN") == [
        b'* ESEARCH (TAG "s1") UID COUNT 3',
        ok("s1"),
    ]
    # a tag in use by a live context cannot open another (RFC 5267 4.3)
    assert c.cmd("s1", "UID SEARCH RETURN (UPDATE) ALL") == [
        ok("s1", r.Reply("BAD", "Tag already names an update context"))
    ]
    # its own STORE takes a message out
    assert c.cmd("s2", "UID STORE 2 +FLAGS.SILENT (\\Seen)") == [
        b'* ESEARCH (TAG "s1") UID REMOVEFROM (0 2)',
        ok("s2"),
    ]
    # an arrival is added after the EXISTS that announces it
    deliver("four")
    assert c.cmd("s3", "NOOP") == [
        b"* 4 EXISTS",
        b"* 4 RECENT",
        b'* ESEARCH (TAG "s1") UID ADDTO (0 4)',
        ok("s3", r.OK_NOOP),
    ]
    # another session's change; the REMOVEFROM comes before the EXPUNGE
    other.cmd("o1", "UID STORE 2:3 -FLAGS.SILENT (\\Seen)")  # 3 was not \Seen
    assert c.cmd("s4", "NOOP") == [
        b"* 2 FETCH (FLAGS (\\Recent))",
        b'* ESEARCH (TAG "s1") UID ADDTO (0 2)',
        ok("s4", r.OK_NOOP),
    ]
    other.cmd("o2", "UID STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    other.cmd("o3", "EXPUNGE")
    assert c.cmd("s5", "NOOP") == [
        b'* ESEARCH (TAG "s1") UID REMOVEFROM (0 1,3)',
        b"* 3 EXPUNGE",
        b"* 1 EXPUNGE",
        b"* 2 RECENT",
        ok("s5", r.OK_NOOP),
    ]
    assert c.cmd("s6", 'CANCELUPDATE "s1"') == [ok("s6", r.Reply("OK", "Updates cancelled"))]
    assert c.cmd("s7", "UID STORE 4 +FLAGS.SILENT (\\Seen)") == [ok("s7")]
    assert c.cmd("s8", 'CANCELUPDATE "s1"') == [ok("s8", r.Reply("NO", "Unknown tag"))]


def test_sequence_number_context_and_idle(client, imap):
    deliver("one", "two", "three")
    c, other = client(), client()
    c.cmd("s0", "SELECT INBOX")
    other.cmd("o0", "SELECT INBOX")
    # UPDATE alone: the correlator only, as Dovecot answers
    assert c.cmd("q1", "SEARCH RETURN (UPDATE) FLAGGED") == [b'* ESEARCH (TAG "q1")', ok("q1")]
    c.send("i1 IDLE\r\n")
    assert c.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    other.cmd("o1", "STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert c.line() == b"* 3 FETCH (FLAGS (\\Flagged \\Recent))"
    assert c.line() == b'* ESEARCH (TAG "q1") ADDTO (0 3)'
    # expunging message 1 renumbers: the REMOVEFROM numbers as before it, the ADDTO after
    other.cmd("o2", "STORE 1 +FLAGS.SILENT (\\Deleted \\Flagged)")
    assert c.line() == b"* 1 FETCH (FLAGS (\\Flagged \\Deleted \\Recent))"
    assert c.line() == b'* ESEARCH (TAG "q1") ADDTO (0 1)'
    other.cmd("o3", "EXPUNGE")
    assert c.line() == b'* ESEARCH (TAG "q1") REMOVEFROM (0 1)'
    assert c.line() == b"* 1 EXPUNGE"
    assert c.line() == b"* 2 RECENT"  # RFC 3501 7.3.2: the \Recent count changed
    c.send("DONE\r\n")
    assert c.until("i1") == [ok("i1", r.OK_IDLE_DONE)]
    assert c.cmd("q2", "SEARCH RETURN (ALL) FLAGGED") == [
        b'* ESEARCH (TAG "q2") ALL 2',
        ok("q2"),
    ]
    # leaving the mailbox ends its contexts
    c.cmd("s1", "SELECT INBOX")
    assert c.cmd("q3", 'CANCELUPDATE "q1"') == [ok("q3", r.Reply("NO", "Unknown tag"))]


def test_sort_update_places_by_position(client, imap):
    deliver("bravo", "delta", "alpha")  # UIDs 1 2 3
    c, other = client(), client()
    c.cmd("s0", "SELECT INBOX")
    other.cmd("o0", "SELECT INBOX")
    assert c.cmd("t1", "UID SORT RETURN (ALL UPDATE) (SUBJECT) UTF-8 UNSEEN") == [
        b'* ESEARCH (TAG "t1") UID ALL 3,1:2',
        ok("t1"),
    ]
    # "charlie" sorts third: between bravo (1) and delta (2)
    deliver("charlie", "echo")  # UIDs 4, 5
    assert c.cmd("t2", "NOOP") == [
        b"* 5 EXISTS",
        b"* 5 RECENT",
        b'* ESEARCH (TAG "t1") UID ADDTO (3 4 5 5)',
        ok("t2", r.OK_NOOP),
    ]
    other.cmd("o1", "NOOP")  # so that it knows of UID 4
    other.cmd("o2", "UID STORE 1,4 +FLAGS.SILENT (\\Seen)")
    assert c.cmd("t3", "NOOP")[-2:] == [
        b'* ESEARCH (TAG "t1") UID REMOVEFROM (2 1,4)',
        ok("t3", r.OK_NOOP),
    ]
    other.cmd("o3", "UID STORE 1 -FLAGS.SILENT (\\Seen)")
    assert c.cmd("t4", "NOOP")[-2:] == [
        b'* ESEARCH (TAG "t1") UID ADDTO (2 1)',
        ok("t4", r.OK_NOOP),
    ]
    # the live result agrees with a fresh SORT
    assert c.cmd("t5", "UID SORT RETURN (ALL) (SUBJECT) UTF-8 UNSEEN") == [
        b'* ESEARCH (TAG "t5") UID ALL 3,1:2,5',
        ok("t5"),
    ]


def test_partial_and_context_hint(client, imap):
    deliver("one", "two", "three", "four")
    c = client()
    c.cmd("s0", "SELECT INBOX")
    assert c.cmd("p1", "UID SEARCH RETURN (PARTIAL 1:2) ALL") == [
        b'* ESEARCH (TAG "p1") UID PARTIAL (1:2 1:2)',
        ok("p1"),
    ]
    assert c.cmd("p2", "SEARCH RETURN (COUNT PARTIAL -1:-3) ALL") == [
        b'* ESEARCH (TAG "p2") COUNT 4 PARTIAL (-1:-3 2:4)',
        ok("p2"),
    ]
    assert c.cmd("p3", "SEARCH RETURN (PARTIAL 5:9) ALL") == [
        b'* ESEARCH (TAG "p3") PARTIAL (5:9 NIL)',
        ok("p3"),
    ]
    assert c.cmd("p4", "SEARCH RETURN (ALL PARTIAL 1:2) ALL")[0].startswith(b"p4 BAD")
    assert c.cmd("p5", "SEARCH RETURN (CONTEXT) ALL") == [b'* ESEARCH (TAG "p5") ALL 1:4', ok("p5")]
    # UPDATE with PARTIAL: the window is answered, updates cover every match (RFC 5267 4.4)
    assert c.cmd("p6", "UID SEARCH RETURN (UPDATE PARTIAL 1:1) UNFLAGGED") == [
        b'* ESEARCH (TAG "p6") UID PARTIAL (1:1 1)',
        ok("p6"),
    ]
    assert c.cmd("p7", "UID STORE 4 +FLAGS.SILENT (\\Flagged)") == [
        b'* ESEARCH (TAG "p6") UID REMOVEFROM (0 4)',
        ok("p7"),
    ]


def test_noupdate_beyond_the_limit(client, imap, live_settings):
    live_settings.MAILHOST_IMAP_MAX_UPDATE_CONTEXTS = 1
    deliver("one")
    c = client()
    c.cmd("s0", "SELECT INBOX")
    assert c.cmd("u1", "UID SEARCH RETURN (UPDATE COUNT) ALL") == [
        b'* ESEARCH (TAG "u1") UID COUNT 1',
        ok("u1"),
    ]
    assert c.cmd("u2", "UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 ALL") == [
        b'* NO [NOUPDATE "u2"] Too many update contexts',
        b'* ESEARCH (TAG "u2") UID COUNT 1',
        ok("u2"),
    ]
    # only u1 hears of a change
    assert c.cmd("u3", "UID STORE 1 +FLAGS.SILENT (\\Deleted)") == [ok("u3")]
    assert c.cmd("u4", "EXPUNGE") == [
        b'* ESEARCH (TAG "u1") UID REMOVEFROM (0 1)',
        b"* 1 EXPUNGE",
        b"* 0 RECENT",
        ok("u4"),
    ]


def test_uidonly_session_keeps_a_context(client, imap):
    deliver("one", "two")
    c = client()
    c.cmd("e1", "ENABLE UIDONLY")
    c.cmd("s0", "SELECT INBOX")
    assert c.cmd("u1", "UID SEARCH RETURN (UPDATE MIN) UNSEEN") == [
        b'* ESEARCH (TAG "u1") UID MIN 1',
        ok("u1"),
    ]
    assert c.cmd("u2", "UID STORE 1 +FLAGS (\\Seen \\Deleted)") == [
        b"* 1 UIDFETCH (FLAGS (\\Seen \\Deleted \\Recent))",
        b'* ESEARCH (TAG "u1") UID REMOVEFROM (0 1)',
        ok("u2"),
    ]
    assert c.cmd("u3", "EXPUNGE") == [b"* VANISHED 1", b"* 1 RECENT", ok("u3")]


def _pairs(text: bytes) -> list[tuple[int, list[int]]]:
    """`3 4,7:6 9 1` -> [(3, [4, 7, 6]), (9, [1])]: ADDTO/REMOVEFROM data, in order."""
    words = text.decode().split()
    out = []
    for position, numbers in zip(words[::2], words[1::2], strict=True):
        uids: list[int] = []
        for part in numbers.split(","):
            low, _, high = part.partition(":")
            step = 1 if int(high or low) >= int(low) else -1
            uids.extend(range(int(low), int(high or low) + step, step))
        out.append((int(position), uids))
    return out


def _applied(result: list[int], lines: list[bytes], tag: str) -> list[int]:
    """The client's copy of a UID SORT context after the ESEARCH updates among `lines`."""
    out = list(result)
    for line in lines:
        if not line.startswith(f'* ESEARCH (TAG "{tag}") UID '.encode()):
            continue
        for name, data in re.findall(rb"(REMOVEFROM|ADDTO) \(([^)]*)\)", line):
            for position, uids in _pairs(data):
                if name == b"REMOVEFROM":
                    assert out[position - 1 : position - 1 + len(uids)] == uids
                    del out[position - 1 : position - 1 + len(uids)]
                else:
                    out[position - 1 : position - 1] = uids
    return out


def test_sort_update_positions_agree_with_a_full_sort(client, imap):
    # several rounds of arrivals (dates and subjects that interleave with the kept result,
    # ties included) and expunges: the result the client builds from ADDTO and REMOVEFROM
    # equals a fresh SORT's each time
    def deliver_dated(*pairs: tuple[str, int]) -> None:
        for subject, day in pairs:
            message = (
                f"From: bob@example.net\r\nSubject: {subject}\r\n"
                f"Date: {day:02d} Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n"
            )
            deliver_in_thread(message.encode(), "alice@example.org").join()

    deliver_dated(("m", 10), ("c", 20), ("x", 5), ("c", 15))
    c, other = client(), client()
    c.cmd("s0", "SELECT INBOX")
    other.cmd("o0", "SELECT INBOX")
    criteria = "(REVERSE DATE SUBJECT) UTF-8 ALL"
    first = c.cmd("t1", f"UID SORT RETURN (ALL UPDATE) {criteria}")
    result = [int(n) for n in re.search(rb"ALL (\S+)", first[0]).group(1).split(b",")]
    rounds = [
        ([("a", 12), ("z", 20), ("b", 1)], ""),
        ([("c", 15), ("m", 25)], "2,5"),
        ([], "1"),
        ([("y", 20), ("a", 3), ("q", 10)], "6,9"),
    ]
    for number, (arrivals, expunged) in enumerate(rounds):
        deliver_dated(*arrivals)
        if expunged:
            other.cmd("o1", "NOOP")
            other.cmd("o2", f"UID STORE {expunged} +FLAGS.SILENT (\\Deleted)")
            other.cmd("o3", "UID EXPUNGE " + expunged)
        lines = c.cmd(f"n{number}", "NOOP")
        result = _applied(result, lines, "t1")
        fresh = c.cmd(f"f{number}", f"UID SORT {criteria}")[0]
        assert result == [int(n) for n in fresh.split()[2:]], (number, lines)
    assert len(result) == 4 + 8 - 5

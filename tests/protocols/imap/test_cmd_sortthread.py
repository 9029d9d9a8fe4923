"""Transcripts: SORT, UID SORT, SORT RETURN (ESORT) with PARTIAL, SORT=DISPLAY keys, THREAD
ORDEREDSUBJECT and REFERENCES (RFC 5256, RFC 5267, RFC 5957)."""

from __future__ import annotations

import pytest

from protocols.imap import responses as r
from protocols.imap.commands.sortthread import BAD_THREAD_ALGORITHM

pytestmark = pytest.mark.django_db(transaction=True)


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def message(subject: str, sender: str, date: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: list@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"{extra}\r\nbody\r\n"
    ).encode()


MESSAGES = [
    # seq 1..5, appended in this order with these internal dates
    (
        message(
            "Re: Plans",
            "Zoe <zoe@example.org>",
            "Tue, 02 Jan 2024 10:00:00 +0000",
            "Message-ID: <b@x>\r\nReferences: <a@x>\r\n",
        ),
        "01-Jan-2024 12:00:00 +0000",
    ),
    (
        message(
            "Plans", "adam@example.org", "Mon, 01 Jan 2024 09:00:00 +0000", "Message-ID: <a@x>\r\n"
        ),
        "01-Jan-2024 11:00:00 +0000",
    ),
    (
        message(
            "[team] fwd: Lunch",
            "Bea <BEA@example.org>",
            "Wed, 03 Jan 2024 08:00:00 +0100",
            "Message-ID: <c@x>\r\n",
        ),
        "01-Jan-2024 11:00:00 +0000",
    ),
    (
        message(
            "Lunch (fwd)",
            "carl@example.org",
            "Tue, 02 Jan 2024 12:00:00 +0000",
            "Message-ID: <d@x>\r\nIn-Reply-To: <c@x>\r\n",
        ),
        "01-Jan-2024 10:00:00 +0000",
    ),
    (
        message(
            "Re: Plans",
            "Adam <adam@example.org>",
            "Wed, 03 Jan 2024 09:00:00 +0000",
            "Message-ID: <e@x>\r\nReferences: <a@x> <b@x>\r\n",
        ),
        "01-Jan-2024 13:00:00 +0000",
    ),
]


@pytest.fixture
def box(client):
    c = client()
    for raw, when in MESSAGES:
        literal = b'APPEND INBOX () "%s" {%d+}\r\n' % (when.encode(), len(raw)) + raw
        assert c.cmd("ap", literal)[-1].startswith(b"ap OK")
    c.cmd("s0", "SELECT INBOX")
    return c


def test_capabilities(client):
    caps = client().cmd("c1", "CAPABILITY")[0].split()
    for name in (
        b"SORT",
        b"SORT=DISPLAY",
        b"ESORT",
        b"THREAD=ORDEREDSUBJECT",
        b"THREAD=REFERENCES",
    ):
        assert name in caps


def test_sort_keys(box):
    c = box
    assert c.cmd("a1", "SORT (ARRIVAL) US-ASCII ALL") == [b"* SORT 4 2 3 1 5", ok("a1")]
    # ties keep mailbox order, REVERSE or not (RFC 5256 3)
    assert c.cmd("a2", "SORT (REVERSE ARRIVAL) US-ASCII ALL") == [b"* SORT 5 1 2 3 4", ok("a2")]
    assert c.cmd("a3", "SORT (DATE) UTF-8 ALL") == [b"* SORT 2 1 4 3 5", ok("a3")]
    # base subjects: Lunch Lunch Plans Plans Plans, then by date
    assert c.cmd("a4", "SORT (SUBJECT DATE) UTF-8 ALL") == [b"* SORT 4 3 2 1 5", ok("a4")]
    # FROM is the local part, case-folded (i;ascii-casemap): adam adam BEA carl zoe
    assert c.cmd("a5", "SORT (FROM) US-ASCII ALL") == [b"* SORT 2 5 3 4 1", ok("a5")]
    # DISPLAYFROM: the name, else the address (RFC 5957): Adam adam@ Bea carl@ Zoe
    assert c.cmd("a6", "SORT (DISPLAYFROM) US-ASCII ALL") == [b"* SORT 5 2 3 4 1", ok("a6")]
    assert c.cmd("a7", "UID SORT (REVERSE SUBJECT) US-ASCII SUBJECT plans") == [
        b"* SORT 1 2 5",  # one base subject: mailbox order
        ok("a7"),
    ]
    assert c.cmd("a8", "SORT (SIZE) US-ASCII SUBJECT nothing") == [b"* SORT", ok("a8")]


def test_esort_return_and_partial(box):
    c = box
    assert c.cmd("b1", "SORT RETURN (MIN MAX COUNT) (DATE) US-ASCII ALL") == [
        b'* ESEARCH (TAG "b1") MIN 2 MAX 5 COUNT 5',
        ok("b1"),
    ]
    assert c.cmd("b2", "SORT RETURN () (DATE) US-ASCII ALL") == [
        b'* ESEARCH (TAG "b2") ALL 2,1,4,3,5',
        ok("b2"),
    ]
    assert c.cmd("b3", "UID SORT RETURN (ALL) (ARRIVAL) US-ASCII ALL") == [
        b'* ESEARCH (TAG "b3") UID ALL 4,2:3,1,5',
        ok("b3"),
    ]
    assert c.cmd("b4", "SORT RETURN (PARTIAL 4:2) (ARRIVAL) US-ASCII ALL") == [
        b'* ESEARCH (TAG "b4") PARTIAL (2:4 2:3,1)',
        ok("b4"),
    ]
    assert c.cmd("b5", "SORT RETURN (PARTIAL -1:-2) (ARRIVAL) US-ASCII ALL") == [
        b'* ESEARCH (TAG "b5") PARTIAL (-1:-2 1,5)',
        ok("b5"),
    ]
    assert c.cmd("b6", "SORT RETURN (COUNT) (ARRIVAL) US-ASCII SUBJECT nothing") == [
        b'* ESEARCH (TAG "b6") COUNT 0',
        ok("b6"),
    ]
    assert c.cmd("b7", "SORT RETURN (PARTIAL 1:*) (ARRIVAL) US-ASCII ALL")[0].startswith(b"b7 BAD")


def test_thread(box):
    c = box
    # <a> (2) has child <b> (1), which has child <e> (5); <c> (3) has child <d> (4)
    assert c.cmd("t1", "THREAD REFERENCES US-ASCII ALL") == [
        b"* THREAD (2 1 5)(3 4)",
        ok("t1"),
    ]
    assert c.cmd("t2", "UID THREAD REFERENCES US-ASCII ALL") == [
        b"* THREAD (2 1 5)(3 4)",
        ok("t2"),
    ]
    # without <a> the thread's root is a dummy; both replies merge under it by subject
    assert c.cmd("t3", "THREAD REFERENCES US-ASCII NOT FROM adam@example.org") == [
        b"* THREAD (1)(3 4)",
        ok("t3"),
    ]
    assert c.cmd("t4", "THREAD ORDEREDSUBJECT US-ASCII ALL") == [
        b"* THREAD (2 (1)(5))(4 3)",
        ok("t4"),
    ]
    assert c.cmd("t5", "THREAD ORDEREDSUBJECT US-ASCII SUBJECT none") == [b"* THREAD", ok("t5")]


def test_refused(box, client):
    c = box
    assert c.cmd("e1", "THREAD SUBJECTS US-ASCII ALL") == [ok("e1", BAD_THREAD_ALGORITHM)]
    assert c.cmd("e2", "SORT (COLOUR) US-ASCII ALL")[0].startswith(b"e2 BAD")
    assert c.cmd("e3", "SORT (REVERSE) US-ASCII ALL")[0].startswith(b"e3 BAD")
    assert c.cmd("e4", "SORT (ARRIVAL) X-NO-SUCH-CHARSET ALL") == [ok("e4", r.NO_BAD_CHARSET)]
    assert c.cmd("e5", "SORT ARRIVAL US-ASCII ALL")[0].startswith(b"e5 BAD")
    unselected = client()
    assert unselected.cmd("e6", "SORT (ARRIVAL) US-ASCII ALL") == [ok("e6", r.BAD_NOT_SELECTED)]


@pytest.mark.parametrize(
    "command",
    ["SORT (ARRIVAL) US-ASCII ALL", "SORT (DATE) US-ASCII 1:5", "THREAD REFERENCES US-ASCII ALL"],
)
def test_after_an_expunge_elsewhere_sort_and_thread_say_expungeissued(box, client, command):
    # As SEARCH (test_cmd_fetchsearch): another session expunged message 2, which this
    # session may not be told of during SORT or THREAD (RFC 9051 7.5.1); the result leaves it
    # out, and the reply says so (RFC 5530 3).
    other = client()
    other.cmd("o0", "SELECT INBOX")
    other.cmd("o1", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.cmd("o2", "EXPUNGE")
    lines = box.cmd("x1", command)
    assert b" 2 " not in lines[0] + b" " and b"(2 " not in lines[0]
    assert lines[-1] == ok("x1", r.OK_EXPUNGE_ISSUED)
    assert b"* 2 EXPUNGE" in box.cmd("x2", "NOOP")
    assert box.cmd("x3", command)[-1] == ok("x3")

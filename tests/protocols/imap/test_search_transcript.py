"""SEARCH over a real socket: exact lines in, exact lines out (keys that need the bytes,
CONDSTORE MODSEQ, ESEARCH with MODSEQ, SEARCHRES, charset errors)."""

from __future__ import annotations

import imaplib

import pytest

from mailboxes import services
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [
    b"Date: Sat, 24 Mar 2007 23:30:00 +0200\r\n"
    b"From: Real From <user-from@example.org>\r\n"
    b"To: team: one@example.org, two@example.org;\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"\r\n"
    b"plain words here\r\n",
    b"Date: Sun, 25 Mar 2007 00:30:00 +0300\r\n"
    b"From: other@example.net\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b"Subject: second\r\n"
    b"X-Tracking: abc123\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"w7xiZXJyYXNjaHVuZw==\r\n",  # "überraschung"
    b"Date: Mon, 26 Mar 2007 09:00:00 -0700\r\n"
    b"From: third@example.com\r\n"
    b"Subject: third\r\n"
    b"\r\n"
    b"nothing to see\r\n",
]


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


@pytest.fixture
def loaded(imap):
    for raw in MESSAGES:
        services.message_deliver(raw=raw, recipients=["alice@example.org"])
    return imap


@pytest.mark.parametrize(
    ("keys", "found"),
    [
        ("TO team", b"1"),  # group names are searchable
        ("TO undisclosed-recipients", b"2"),
        ("TO two@example", b"1"),
        ("FROM real", b"1"),
        ("FROM example", b"1 2 3"),
        ('SUBJECT "GRÜSSE"', b"1"),  # 8-bit in a quoted string is taken as UTF-8
        ("SUBJECT second", b"2"),
        ("BODY ÜBERRASCHUNG", b"2"),  # base64, decoded, Unicode case folding
        ("BODY words", b"1"),
        ("TEXT abc123", b"2"),
        ("HEADER X-Tracking abc", b"2"),
        ('HEADER X-Tracking ""', b"2"),
        ("NOT HEADER X-Tracking abc", b"1 3"),
        ("SENTON 24-Mar-2007", b"1"),
        ("SENTON 25-Mar-2007", b"2"),
        ("SENTSINCE 26-Mar-2007", b"3"),
        ("SENTBEFORE 25-Mar-2007", b"1"),
        ("OR BODY words TEXT abc123", b"1 2"),
        ("2:* NOT FROM other", b"3"),
        ("UID 2:*", b"2 3"),
    ],
)
def test_keys_over_the_wire(client, loaded, keys, found):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    expected = b"* SEARCH" + (b" " + found if found else b"")
    assert c.cmd("a1", "SEARCH " + keys) == [expected, ok("a1")]


def test_utf8_strings_in_literals(client, loaded):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    needle = "GRÜSSE".encode()
    c.send(b"a1 SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n" % len(needle) + needle + b"\r\n")
    assert c.until("a1") == [b"* SEARCH 1", ok("a1")]
    needle = "Überraschung".encode()
    c.send(b"a2 SEARCH BODY {%d+}\r\n" % len(needle) + needle + b"\r\n")
    assert c.until("a2") == [b"* SEARCH 2", ok("a2")]


def test_modseq_in_search_and_esearch(client, loaded):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    lines = c.cmd("a1", "FETCH 1:3 (MODSEQ)")
    modseqs = [int(line.rsplit(b"(", 1)[1].rstrip(b"))")) for line in lines[:3]]
    c.cmd("a2", "STORE 1 +FLAGS.SILENT (\\Flagged)")
    flagged_modseq = int(c.cmd("a3", "FETCH 1 (MODSEQ)")[0].rsplit(b"(", 1)[1].rstrip(b"))"))
    assert flagged_modseq > max(modseqs)
    assert c.cmd("a4", f"SEARCH MODSEQ {max(modseqs) + 1}") == [
        b"* SEARCH 1 (MODSEQ %d)" % flagged_modseq,
        ok("a4"),
    ]
    assert c.cmd("a5", "SEARCH RETURN (MIN COUNT) MODSEQ 1") == [
        b'* ESEARCH (TAG "a5") MIN 1 COUNT 3 MODSEQ %d' % flagged_modseq,
        ok("a5"),
    ]
    assert c.cmd("a6", "SEARCH RETURN (MAX) MODSEQ 1") == [
        b'* ESEARCH (TAG "a6") MAX 3 MODSEQ %d' % modseqs[2],
        ok("a6"),
    ]
    assert c.cmd("a7", "SEARCH MODSEQ 999999999") == [b"* SEARCH", ok("a7")]


def test_saved_result_and_errors(client, loaded):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    assert c.cmd("a1", "SEARCH RETURN (SAVE MAX) FROM example") == [
        b'* ESEARCH (TAG "a1") MAX 3',
        ok("a1"),
    ]
    assert c.cmd("a2", "SEARCH $") == [b"* SEARCH 3", ok("a2")]
    assert c.cmd("a3", "SEARCH NOT $") == [b"* SEARCH 1 2", ok("a3")]
    assert c.cmd("a4", "SEARCH CHARSET X-NO-SUCH-CHARSET ALL") == [ok("a4", r.NO_BAD_CHARSET)]
    assert c.cmd("a5", "SEARCH SENTON 32-Mar-2007")[0].startswith(b"a5 BAD")
    assert c.cmd("a6", "SEARCH OR SEEN")[0].startswith(b"a6 BAD")
    assert c.cmd("a7", "SEARCH ALL") == [b"* SEARCH 1 2 3", ok("a7")]


def test_imaplib_search(loaded):
    conn = imaplib.IMAP4("127.0.0.1", loaded["ports"]["imap"])
    try:
        conn.login("alice@example.org", "secret")
        conn.select("INBOX")
        assert conn.search(None, "TO", "team") == ("OK", [b"1"])
        assert conn.uid("SEARCH", "BODY", "words") == ("OK", [b"1"])
        typ, data = conn.search("UTF-8", "BODY", '"überraschung"'.encode())
        assert (typ, data) == ("OK", [b"2"])
    finally:
        conn.logout()


FOLDING = [
    b"From: =?utf-8?q?Gro=C3=9F?= <g@example.net>\r\nSubject: =?utf-8?q?Stra=C3=9Fe?=\r\n",
    b"To: Gross <x@example.org>\r\nSubject: STRASSE\r\n",
    b"Cc: =?utf-8?q?=EF=AC=82ow?= <f@example.org>\r\nSubject: =?utf-8?q?=EF=AC=81nance?= report\r\n",
    b"Subject: =?utf-8?q?=E2=84=AApi?= of the week\r\n",  # KELVIN SIGN, folds to "k"
    b"Subject: hello   world\r\n",
    b"Subject: =?utf-8?q?hello=C2=A0world?=\r\n",  # NO-BREAK SPACE
    b"Subject: other\r\n",
]


@pytest.mark.parametrize(
    ("criteria", "found"),
    [
        (["SUBJECT", "Straße"], [1, 2]),
        (["SUBJECT", "strasse"], [1, 2]),
        (["SUBJECT", "STRAẞE"], [1, 2]),  # capital sharp s
        (["SUBJECT", "ﬁnance"], [3]),
        (["SUBJECT", "finance REPORT"], [3]),
        (["SUBJECT", "kpi"], [4]),
        (["FROM", "gross"], [1]),
        (["TO", "Groß"], [2]),
        (["CC", "flow"], [3]),
        (["SUBJECT", "hello world"], [5, 6]),
        (["SUBJECT", "o w"], [5, 6]),
        (["SUBJECT", "other"], [7]),
        (["NOT", "SUBJECT", "strasse"], [3, 4, 5, 6, 7]),
    ],
)
def test_needles_whose_folding_is_ascii_match_cached_fields(imap, criteria, found):
    """Issue 13: an ASCII needle after case folding ("Straße" -> "strasse") went to the SQL
    pre-filter, which dropped the rows whose text folds to it ("Straße", "ﬁ", white space)."""
    import imapclient

    for head in FOLDING:
        raw = b"From: a@example.net\r\n" + head if not head.startswith(b"From") else head
        services.message_deliver(raw=raw + b"\r\nbody\r\n", recipients=["alice@example.org"])
    c = imapclient.IMAPClient("127.0.0.1", port=imap["ports"]["imap"], ssl=False)
    c.login("alice@example.org", "secret")
    c.select_folder("INBOX")
    assert c.search(criteria, charset="UTF-8") == found
    c.logout()


def test_from_to_cc_subject_date_read_the_fields_fetch_reads(imap, client):
    # Found by the Dovecot differential (RFC 2822 A.6.3's example, a mail parser fixture):
    # "From  :" with white space before the colon is a field (RFC 5322 4.5 obs-optional), and
    # a line without a colon does not end the header. SEARCH FROM/CC/SUBJECT/SENT* went by
    # the columns cached at delivery, which Python's compat32 parser had read without them.
    raw = (
        b"From  : John Doe <jdoe@machine(comment).  example>\r\n"
        b"To: mary@example.net\r\n"
        b"by a line that lost its fold\r\n"
        b"Cc: carol@example.com\r\n"
        b"Subject  : obsolete syntax\r\n"
        b"Date: Mon, 26 Mar 2007 09:00:00 -0700\r\n"
        b"\r\n"
        b"body\r\n"
    )
    services.message_deliver(raw=raw, recipients=["alice@example.org"])
    c = client()
    c.cmd("s", "SELECT INBOX")
    assert c.cmd("a", "SEARCH FROM jdoe@machine.example") == [b"* SEARCH 1", ok("a")]
    assert c.cmd("b", "SEARCH CC carol") == [b"* SEARCH 1", ok("b")]
    assert c.cmd("c", 'SEARCH NOT FROM "@"') == [b"* SEARCH", ok("c")]
    assert c.cmd("d", "SEARCH SUBJECT obsolete") == [b"* SEARCH 1", ok("d")]
    assert c.cmd("e", "SEARCH SENTON 26-Mar-2007") == [b"* SEARCH 1", ok("e")]


def test_rfc1556_and_mac_charsets_are_read(imap, client):
    # Found by the Dovecot differential: an Outlook subject in iso-8859-8-i (RFC 1556) was
    # read as Latin-1 (its yod became "é"), an x-mac-cyrillic body not at all.
    raw = (
        b"From: a@example.org\r\n"
        b"Subject: =?iso-8859-8-i?B?7vLw5CAn4PDpIOzgIPDu9uAnOiBJbnZvaWNlIDAyNzIyMDI3?=\r\n"
        b"Content-Type: text/plain; charset=x-mac-cyrillic\r\n"
        b"\r\n"
        b"\x8f\xf0\xe8\xe2\xe5\xf2\r\n"  # "Привет"
    )
    services.message_deliver(raw=raw, recipients=["alice@example.org"])
    c = client()
    c.cmd("s", "SELECT INBOX")
    for tag, key, needle in (
        ("a", "SUBJECT", "נמצא"),
        ("b", "SUBJECT", "é"),
        ("c", "BODY", "привет"),
    ):
        data = needle.encode()
        c.send(f"{tag} SEARCH CHARSET UTF-8 {key} {{{len(data)}}}\r\n".encode())
        assert c.line().startswith(b"+")
        found = b"* SEARCH" if needle == "é" else b"* SEARCH 1"
        c.send(data + b"\r\n")
        assert c.until(tag) == [found, ok(tag)], needle

"""FETCH of structures and sections over a real socket: exact lines in, exact lines out."""

from __future__ import annotations

import base64

import pytest

from mailboxes import selectors, services
from mailboxes.models import Message
from protocols.imap import mime
from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)

MIXED = (
    b"From: Bob <bob@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: report\r\n"
    b"Message-ID: <r1@example.net>\r\n"
    b"Content-Type: multipart/mixed; boundary=zz\r\n"
    b"\r\n"
    b"--zz\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9\r\n"
    b"--zz\r\n"
    b"Content-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=data.bin\r\n"
    b"\r\n" + base64.b64encode(b"\x00\x01binary\xff") + b"\r\n"
    b"--zz\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 x\r\n"
    b"--zz--\r\n"
)


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


@pytest.fixture
def mixed(imap):
    services.message_deliver(raw=MIXED, recipients=["alice@example.org"])
    return selectors.folder_get(imap["mailbox"], "INBOX")


def test_structure_items_and_their_cache(client, mixed):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    analysis = mime.analyze(MIXED)
    expected = (
        b"* 1 FETCH (ENVELOPE "
        + analysis["envelope"].encode()
        + b" BODYSTRUCTURE "
        + analysis["bodystructure"].encode()
        + b" BODY "
        + analysis["body"].encode()
        + b")"
    )
    assert c.cmd("a1", "FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)") == [expected, ok("a1")]
    # The structure is cached on the row; a second FETCH answers the same from the cache.
    cache = Message.objects.get(folder=mixed).mime_cache["imap"]
    assert mime.cache_valid(cache) and cache["bodystructure"] == analysis["bodystructure"]
    assert c.cmd("a2", "FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)") == [expected, ok("a2")]
    assert analysis["bodystructure"].startswith(
        '(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 9 0 NIL NIL NIL NIL)'
        '("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" 12 NIL'
        ' ("attachment" ("filename" "data.bin")) NIL NIL)'
    )


def test_sections_partials_and_binary(client, mixed):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    assert c.cmd("a1", "FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME]<0.12>)") == [
        b"* 1 FETCH (BODY[1] {9}\r\ncaf=C3=A9 BODY[1.MIME]<0> {12}\r\nContent-Type)",
        ok("a1"),
    ]
    assert c.cmd("a2", 'FETCH 1 BODY.PEEK[HEADER.FIELDS (subject "Message-ID")]') == [
        b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)] {49}\r\n"
        b"Subject: report\r\nMessage-ID: <r1@example.net>\r\n\r\n)",
        ok("a2"),
    ]
    assert c.cmd("a3", "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[2])") == [
        b"* 1 FETCH (BINARY.SIZE[1] 5 BINARY[1] {5}\r\ncaf\xc3\xa9 "
        b"BINARY[2] ~{9}\r\n\x00\x01binary\xff)",
        ok("a3"),
    ]
    assert c.cmd("a4", "FETCH 1 BODY.PEEK[4]") == [b"* 1 FETCH (BODY[4] NIL)", ok("a4")]
    assert c.cmd("a5", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))", ok("a5")]


def test_binary_of_an_unknown_encoding_is_refused(client, mixed):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    assert c.cmd("a1", "FETCH 1 BINARY.PEEK[3]") == [
        ok("a1", r.Reply("NO", "Unknown Content-Transfer-Encoding", "UNKNOWN-CTE"))
    ]
    # the undecoded octets are still there with BODY, and the session carries on
    assert c.cmd("a2", "FETCH 1 BODY.PEEK[3]") == [
        b"* 1 FETCH (BODY[3] {11}\r\nbegin 644 x)",
        ok("a2"),
    ]


def test_rfc822_items_and_seen(client, mixed):
    c = client()
    c.cmd("a0", "SELECT INBOX")
    header = MIXED[: MIXED.index(b"\r\n\r\n") + 4]
    assert c.cmd("a1", "FETCH 1 (RFC822.SIZE RFC822.HEADER)") == [
        b"* 1 FETCH (RFC822.SIZE %d RFC822.HEADER {%d}\r\n%s)" % (len(MIXED), len(header), header),
        ok("a1"),
    ]
    assert c.cmd("a2", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))", ok("a2")]
    assert c.cmd("a3", "FETCH 1 BINARY[1]") == [
        b"* 1 FETCH (BINARY[1] {5}\r\ncaf\xc3\xa9 FLAGS (\\Seen \\Recent))",
        ok("a3"),
    ]
    lines = c.cmd("a4", "FETCH 1 RFC822")
    assert lines == [b"* 1 FETCH (RFC822 {%d}\r\n%s)" % (len(MIXED), MIXED), ok("a4")]


def test_broken_message_fetches_like_any_other(client, imap):
    raw = b"Subject: \xff\xfe broken\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\nno parts"
    services.message_deliver(raw=raw, recipients=["alice@example.org"])
    c = client()
    c.cmd("a0", "SELECT INBOX")
    analysis = mime.analyze(raw)
    lines = c.cmd("a1", "FETCH 1 (ENVELOPE BODYSTRUCTURE)")
    assert lines == [
        b"* 1 FETCH (ENVELOPE "
        + analysis["envelope"].encode("latin-1")
        + b" BODYSTRUCTURE "
        + analysis["bodystructure"].encode("latin-1")
        + b")",
        ok("a1"),
    ]
    assert b"{9}\r\n\xff\xfe broken" in lines[0]


def test_imapclient_parses_our_structures(imap):
    from imapclient import IMAPClient

    from tests.protocols.imap.test_mime import ATTACHMENTS, NESTED

    eight_bit = b"From: J\xc3\xb6rg <j@example.org>\r\nSubject: caf\xc3\xa9\r\n\r\nhi\r\n"
    for raw in (NESTED, ATTACHMENTS, eight_bit, MIXED):
        services.message_deliver(raw=raw, recipients=["alice@example.org"])
    with IMAPClient("127.0.0.1", port=imap["ports"]["imap"], ssl=False) as client:
        client.login("alice@example.org", "secret")
        client.select_folder("INBOX")
        data = client.fetch([1, 2, 3, 4], ["ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.SIZE"])
    assert sorted(data) == [1, 2, 3, 4]
    nested, attachments, eight, mixed = (data[n] for n in (1, 2, 3, 4))
    assert nested[b"ENVELOPE"].subject == b"fwd"
    assert nested[b"ENVELOPE"].from_[0].name == b"Outer"
    assert nested[b"BODYSTRUCTURE"].is_multipart
    inner = nested[b"BODYSTRUCTURE"][0][1]
    assert inner[:2] == (b"message", b"rfc822")
    assert inner[7][1] == b"the original"  # the encapsulated message's envelope
    assert attachments[b"BODYSTRUCTURE"][0][1][2] == (b"name", b"long file name.pdf")
    assert eight[b"ENVELOPE"].subject == "café".encode()
    assert eight[b"ENVELOPE"].from_[0].name == "Jörg".encode()
    assert mixed[b"RFC822.SIZE"] == len(MIXED)
    # a text part: seven body fields and its lines; BODYSTRUCTURE adds four extension fields
    assert len(mixed[b"BODY"][0][0]) == 8
    assert len(mixed[b"BODYSTRUCTURE"][0][0]) == 12


def test_pathological_nesting_round_trips_through_the_cache(client, imap):
    from tests.protocols.imap.test_mime import _deep

    raw = _deep(1000)
    services.message_deliver(raw=raw, recipients=["alice@example.org"])
    c = client()
    c.cmd("a0", "SELECT INBOX")
    expected = [
        b"* 1 FETCH (BODYSTRUCTURE " + mime.analyze(raw)["bodystructure"].encode() + b")",
        ok("a1"),
    ]
    assert c.cmd("a1", "FETCH 1 BODYSTRUCTURE") == expected
    cache = Message.objects.get(folder__mailbox=imap["mailbox"]).mime_cache["imap"]
    assert mime.cache_valid(cache)  # 100 levels deep, stored and read back by the database
    expected[1] = ok("a2")
    assert c.cmd("a2", "FETCH 1 BODYSTRUCTURE") == expected
    path = ".".join(["1"] * 50)
    assert c.cmd("a3", f"FETCH 1 BODY.PEEK[{path}.MIME]") == [
        b"* 1 FETCH (BODY[%s.MIME] {47}\r\nContent-Type: multipart/mixed; boundary=b50\r\n\r\n)"
        % path.encode(),
        ok("a3"),
    ]

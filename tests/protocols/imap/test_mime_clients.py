"""MIME structure, sections and NUL octets as real clients see them (imaplib, IMAPClient).

Issue 13: nested multiparts reusing a boundary, text parts without charset, line counts,
repeated To/Cc fields and raw display names in ENVELOPE; issue 14: no NUL inside a literal
other than literal8 (RFC 3516)."""

from __future__ import annotations

import email
import imaplib
from email import policy

import imapclient
import pytest

from tests.protocols.imap.test_mime import SAME_BOUNDARY

pytestmark = pytest.mark.django_db(transaction=True)


def login(imap) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", imap["ports"]["imap"])
    m.login("alice@example.org", "secret")
    return m


def fetch_one(m: imaplib.IMAP4, items: str) -> list:
    typ, data = m.uid("FETCH", "1", items)
    assert typ == "OK", data
    return data


def test_same_boundary_nested_multipart_over_imaplib(imap):
    m = login(imap)
    assert m.append("INBOX", None, None, SAME_BOUNDARY)[0] == "OK"
    m.select("INBOX")
    data = fetch_one(m, "(BODYSTRUCTURE)")
    assert (
        b'BODYSTRUCTURE ((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0'
        b' NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0'
        b' NIL NIL NIL NIL) "alternative" ("boundary" "B") NIL NIL NIL)'
        b'("application" "pdf" ("name" "x.pdf") NIL NIL "base64" 12 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "B") NIL NIL NIL)'
    ) in data[0]
    sections = {}
    for path in ("1.1", "1.2", "2"):
        data = fetch_one(m, f"(BODY.PEEK[{path}])")
        sections[path] = data[0][1]
    assert sections == {"1.1": b"plain text", "1.2": b"<p>html</p>", "2": b"JVBERi0xLjQK"}
    # Python's email package finds the same text parts (it loses the PDF: it matches the
    # parent's boundary first and flags StartBoundaryNotFoundDefect on the inner multipart).
    parsed = email.message_from_bytes(SAME_BOUNDARY, policy=policy.compat32)
    leaves = [p.get_payload(decode=True) for p in parsed.walk() if not p.is_multipart()]
    assert b"plain text" in leaves and b"<p>html</p>" in leaves
    assert sections["1.1"] in leaves and sections["1.2"] in leaves
    m.logout()


def test_same_boundary_nested_multipart_over_imapclient(imap):
    c = imapclient.IMAPClient("127.0.0.1", port=imap["ports"]["imap"], ssl=False)
    c.login("alice@example.org", "secret")
    c.append("INBOX", SAME_BOUNDARY)
    c.select_folder("INBOX")
    uid = c.search("ALL")[0]
    data = c.fetch([uid], ["BODYSTRUCTURE", "BINARY.PEEK[2]", "BODY.PEEK[1.2.MIME]"])[uid]
    structure = data[b"BODYSTRUCTURE"]
    assert structure.is_multipart and len(structure[0]) == 2
    assert structure[0][1][:2] == (b"application", b"pdf")
    assert data[b"BINARY[2]"] == b"%PDF-1.4\n"
    assert data[b"BODY[1.2.MIME]"] == b"Content-Type: text/html\r\n\r\n"
    c.logout()


REPEATED_FIELDS = (
    b"From: alice@example.com <bob@example.com>\r\n"
    b"To: one@example.org\r\n"
    b"Cc: c1@example.org\r\n"
    b"To: Two <two@example.org>\r\n"
    b'Cc: "Carol, C." <c2@example.org>\r\n'
    b"Subject: repeated\r\n"
    b"\r\n"
    b"body\r\n"
)


def test_envelope_concatenates_repeated_fields_and_keeps_display_names(imap):
    m = login(imap)
    assert m.append("INBOX", None, None, REPEATED_FIELDS)[0] == "OK"
    m.select("INBOX")
    data = fetch_one(m, "(ENVELOPE)")
    assert (
        b'ENVELOPE (NIL "repeated" (("alice@example.com" NIL "bob" "example.com")) '
        b'(("alice@example.com" NIL "bob" "example.com")) '
        b'(("alice@example.com" NIL "bob" "example.com")) '
        b'((NIL NIL "one" "example.org")("Two" NIL "two" "example.org")) '
        b'((NIL NIL "c1" "example.org")("Carol, C." NIL "c2" "example.org")) NIL NIL NIL)'
    ) in data[0]
    # SEARCH CC already matched the second Cc field; ENVELOPE now shows it too.
    assert m.uid("SEARCH", "CC", "c2@example.org") == ("OK", [b"1"])
    m.logout()


# Issue 13: a multipart whose boundary never occurs, with a NUL in its body.
NUL_MESSAGE = (
    b"From: a@example.org\r\n"
    b"Subject: nul\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="never-used"\r\n'
    b"\r\n"
    b"binary\x00junk\r\nsecond line\x00\r\n"
)


def append_literal8(m: imaplib.IMAP4, raw: bytes) -> bytes:
    """APPEND with a literal8 (RFC 3516 4.4), which imaplib cannot send by itself."""
    m.send(b"n1 APPEND INBOX ~{%d}\r\n" % len(raw))
    assert m.readline().startswith(b"+")
    m.send(raw + b"\r\n")
    while True:
        line = m.readline()
        if line.startswith(b"n1 "):
            return line


@pytest.mark.parametrize(
    "raw",
    [
        NUL_MESSAGE,
        b"Subject: leaf\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\r\n\x00",
    ],
    ids=["multipart without delimiters", "binary leaf"],
)
def test_nul_octets_are_stored_as_sent_and_never_sent_in_a_plain_literal(imap, raw):
    m = login(imap)
    assert append_literal8(m, raw).startswith(b"n1 OK")
    m.select("INBOX")
    data = fetch_one(m, "(RFC822.SIZE BODY.PEEK[] BINARY.PEEK[])")
    body = {b"BODY": data[0][1], b"BINARY": data[1][1]}
    # RFC 3516 4.1 / RFC 9051 4.3: no NUL in a literal but a literal8. Like Dovecot, BODY[]
    # shows each NUL as 0x80, so its size is RFC822.SIZE; BINARY[] is the stored octets.
    assert b"RFC822.SIZE %d " % len(raw) in data[0][0]
    assert b"BODY[] {%d}" % len(raw) in data[0][0]
    assert body[b"BODY"] == raw.replace(b"\x00", b"\x80")
    assert b"BINARY[] ~{%d}" % len(raw) in data[1][0]
    assert body[b"BINARY"] == raw
    m.logout()


def test_nul_in_structure_fields_is_cached_and_served(imap):
    # NUL in the fields the structure cache keeps (PostgreSQL's jsonb refuses \u0000).
    raw = (
        b"Subject: a\x00b\r\nFrom: N\x00 <n@x>\r\nContent-Type: text/pl\x00ain; charset=\x00\r\n"
        b"Content-Transfer-Encoding: q\x00p\r\n\r\nx"
    )
    m = login(imap)
    assert append_literal8(m, raw).startswith(b"n1 OK")
    m.select("INBOX")
    for _ in range(2):  # the second answer comes from the cache
        data = fetch_one(m, "(ENVELOPE BODYSTRUCTURE)")
        assert b"\x00" not in data[0]
        assert b'ENVELOPE (NIL "ab" (("N" NIL "n" "x"))' in data[0]
        assert b'"qp" 1 0 NIL NIL NIL NIL)' in data[0]
    m.logout()
    from mailboxes.models import Message
    from protocols.imap import mime

    # The cache was stored (a refused write would be retried on every FETCH of its batch).
    assert mime.cache_valid(Message.objects.get().mime_cache["imap"])

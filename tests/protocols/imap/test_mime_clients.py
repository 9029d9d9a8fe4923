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

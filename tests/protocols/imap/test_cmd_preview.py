"""Transcripts: PREVIEW (RFC 8970)."""

from __future__ import annotations

import pytest

from mailboxes import preview, services
from protocols.imap import mime

pytestmark = pytest.mark.django_db(transaction=True)

PLAIN = b"From: a@example.org\r\nSubject: plain\r\n\r\nHello   there,\r\n\r\nsee you\tsoon.\r\n"
HTML = (
    b"From: a@example.org\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n<html><head><style>p {}</style></head><body><p>Caf=C3=A9 &amp; cake</p></body></html>\r\n"
)
ALTERNATIVE = (
    b"From: a@example.org\r\nSubject: alt\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/html\r\n\r\n<b>rich</b>\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--b--\r\n"
)
NO_TEXT = (
    b"From: a@example.org\r\nSubject: image\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
)
LONG = b"From: a@example.org\r\nSubject: long\r\n\r\n" + b"word " * 200 + b"\r\n"


def test_preview_items(client):
    for raw in (PLAIN, HTML, ALTERNATIVE, NO_TEXT, LONG):
        services.message_deliver(raw=raw, recipients=["alice@example.org"])
    c = client()
    assert b"PREVIEW" in c.cmd("c1", "CAPABILITY")[0].split()
    c.cmd("s1", "SELECT INBOX")
    lines = c.cmd("f1", "FETCH 1:4 (PREVIEW)")
    assert lines[0] == b'* 1 FETCH (PREVIEW "Hello there, see you soon.")'
    # non-ASCII text goes as a literal to a client that has not enabled UTF8=ACCEPT
    assert lines[1] == b"* 2 FETCH (PREVIEW {12}\r\nCaf\xc3\xa9 & cake)"
    assert lines[2] == b'* 3 FETCH (PREVIEW "plain words")'
    assert lines[3] == b'* 4 FETCH (PREVIEW "")'
    assert lines[4] == b"f1 OK Completed"
    long = c.cmd("f2", "UID FETCH 5 (PREVIEW (LAZY) FLAGS)")[0]
    assert long.startswith(b'* 5 FETCH (UID 5 PREVIEW "word word') and b"\\Seen" not in long
    assert len(long.split(b'"')[1]) == preview.MAX_CHARS
    assert c.cmd("f3", "FETCH 1 (PREVIEW (EAGER))")[0].startswith(b"f3 BAD")


def test_preview_function():
    assert preview.preview(PLAIN, mime.parse(PLAIN, render=False)) == "Hello there, see you soon."

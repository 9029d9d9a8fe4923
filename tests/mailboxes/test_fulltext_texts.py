"""fulltext.texts_of, the indexer's reading of a message: the header's text and the body's text
are those header_text(header_fields(raw)) and body_text(raw) give, with the header section
read once (by the part tree's parse) instead of twice."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailboxes import fulltext, mime

SIMPLE = (
    b"Received: from a.example by b.example;\r\n\tSat, 5 Dec 2026 18:00:00 +0000\r\n"
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@a.example>\r\nTo: b@b.example\r\n"
    b"Subject: Hello World\r\n\r\nSome Text\r\nmore text\r\n"
)
MULTIPART = (
    b"From: a@a.example\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 au lait\r\n"
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: c@c.example\r\n\r\n"
    b"inner body\r\n--XX\r\nContent-Type: application/octet-stream\r\n\r\nAAAA\r\n--XX--\r\n"
)
CASES = [
    SIMPLE,
    MULTIPART,
    b"",
    b"\r\nno header at all\r\n",
    b"Subject: no body, no blank line",
    b"Subject: bare LF\n  folded\nX: y\n\nbody\n",
    b"Content-Type: multipart/alternative\r\n\r\nno boundary\r\n",
    # A header past MAX_HEADER_OCTETS, which the tree reads only that far: read whole.
    b"".join(b"X-Long-%d: %s\r\n" % (n, b"v" * 70) for n in range(1200))
    + b"Subject: after the limit\r\n\r\nbody\r\n",
]


def reference(raw: bytes) -> tuple[str, str]:
    return fulltext.header_text(fulltext.header_fields(raw)), fulltext.body_text(raw)


@pytest.mark.parametrize("raw", CASES)
def test_texts_of_are_the_header_and_body_texts(raw: bytes) -> None:
    assert fulltext.texts_of(raw) == reference(raw)


def test_the_long_header_is_read_past_the_trees_limit() -> None:
    raw = CASES[-1]
    assert raw.index(b"\r\n\r\n") > mime.MAX_HEADER_OCTETS
    assert "subject: after the limit" in fulltext.texts_of(raw)[0]


PIECES = st.sampled_from(
    [
        b"Subject: x\r\n",
        b"From: =?utf-8?b?w6k=?= <a@b>\r\n",
        b" folded\r\n",
        b"\r\n",
        b"\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"text \xe9\r\n",
        b"no colon line\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=30))
def test_texts_of_agree_on_any_message(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    assert fulltext.texts_of(raw) == reference(raw)

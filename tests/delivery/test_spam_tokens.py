"""The spam tokenizer's text of a single-part message read from the header already parsed is
what the full parse of the message gives, the hostile header shapes and encodings included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.spam import tokens
from mailboxes.headers import header_read
from tests.support.headerlines import HEADER_LINES

HEAD = b"From: a@remote.example\r\nTo: b@example.org\r\nSubject: hi\r\n"
BODY = b"Hello =E9t=C3=A9 <b>bold</b> http://192.0.2.7/x \xe9\xe8 caf\xc3\xa9\r\n"

SINGLE = [
    HEAD + b"\r\n" + BODY,
    HEAD.replace(b"\r\n", b"\n") + b"\n" + BODY,
    HEAD + b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n" + BODY,
    HEAD + b'Content-Type: TEXT/HTML; charset="UTF-8"\r\n\r\n<p>' + BODY,
    HEAD + b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n" + BODY,
    HEAD + b"Content-Type: text/plain; charset*0=us; charset=x\r\n\r\n" + BODY,
    HEAD + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + BODY + b"soft=\r\nbreak",
    HEAD + b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29y\r\nbGQ=\r\n!!",
    HEAD + b"Content-Disposition: attachment; filename=a.txt\r\n\r\n" + BODY,
    HEAD + b"Content-Type: text\r\n\r\n" + BODY,
    HEAD + b"\r\n",
    HEAD + b"\r\n" + b"word " * 10_000,
]
# Left to the full parse: a header whose end the parsed header does not make certain, a
# uuencoded body, and the types that are not one text part.
PARSED = [
    HEAD + b"Content-Type: application/pdf\r\n\r\n" + BODY,
    b"From nobody Mon Jan  1 00:00:00 2024\r\n" + HEAD + b"\r\n" + BODY,
    HEAD + b"a line with no colon\r\n\r\n" + BODY,
    HEAD + b"X-Cr: one\rX-Two: two\r\r\n" + BODY,
    HEAD + b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\n#86)C\n`\nend\n",
    HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + BODY + b"--b--\r\n",
    HEAD + b"Content-Type: message/rfc822\r\n\r\n" + HEAD + b"\r\n" + BODY,
    HEAD + b"X-Long: " + b"y" * tokens.RAW_LIMIT + b"\r\n\r\n" + BODY,
    HEAD + BODY,
]


@pytest.mark.parametrize("raw", SINGLE + PARSED)
def test_text_from_the_parsed_header_is_the_full_parse(raw):
    assert tokens.text_of(raw, header_read(raw).parsed) == tokens.text_of(raw)


@pytest.mark.parametrize("raw", SINGLE)
def test_a_single_part_message_is_not_parsed_again(raw):
    assert tokens._single_text_part(raw, header_read(raw).parsed) is not None


@pytest.mark.parametrize("raw", PARSED)
def test_the_others_are_left_to_the_full_parse(raw):
    assert tokens._single_text_part(raw, header_read(raw).parsed) is None


# Port 25's field on top of what it stores, which header_read may skip (its `ours`).
OURS = b"Authentication-Results: mx.example.org;\r\n\tspf=none;\r\n\tarc=none\r\n"


@pytest.mark.parametrize("raw", SINGLE + PARSED)
@pytest.mark.parametrize("ours", [b"", OURS])
def test_the_body_start_of_the_header_read_is_where_the_pattern_ends(raw, ours):
    """header_read's body_start, given, spares _HEADER's match: it is that match's end
    wherever it is given (bounded by RAW_LIMIT), and the text is the full parse's."""
    raw = ours + raw
    read = header_read(raw, len(ours))
    section = tokens._HEADER.match(raw, 0, tokens.RAW_LIMIT)
    if read.body_start is not None and read.body_start <= tokens.RAW_LIMIT:
        assert section is not None and section.end() == read.body_start
    single = tokens._single_text_part(raw, read.parsed, read.body_start)
    assert single == tokens._single_text_part(raw, read.parsed)
    assert tokens.text_of(raw, read.parsed, read.body_start) == tokens.text_of(raw)


def test_the_common_header_gives_its_body_start():
    for ours in (b"", OURS):
        raw = ours + SINGLE[0]
        assert header_read(raw, len(ours)).body_start == len(ours + HEAD + b"\r\n")
    assert header_read(PARSED[1]).body_start is None  # an envelope line: the parser's


# The header lines, and a type the text is read from.
LINES = [*HEADER_LINES, b"Content-Type: text/html\r\n"]


@given(st.lists(st.sampled_from(LINES), max_size=12).map(b"".join), st.sampled_from([b"", OURS]))
@settings(max_examples=500, deadline=None)
def test_the_body_start_is_where_the_pattern_ends_for_any_lines(head, ours):
    raw = ours + head + b"\r\n<b>the</b> body\r\n"
    read = header_read(raw, len(ours))
    if read.body_start is not None:
        section = tokens._HEADER.match(raw, 0, tokens.RAW_LIMIT)
        assert section is not None and section.end() == read.body_start
    assert tokens.text_of(raw, read.parsed, read.body_start) == tokens.text_of(raw)

"""mailboxes.headers.blank_line: the end of a header section, found from its LF; parse_header:
the email package's Message of a header section, made without its feed parser when it can."""

from __future__ import annotations

import random
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailboxes import fulltext, headers, mime
from mailboxes.headers import (
    blank_line,
    bounded_header,
    field_values,
    header_block,
    parse_header,
    summarize,
)
from tests.support.headerlines import HEADER_LINES

_SEARCHED = re.compile(rb"\r?\n\r?\n")  # what blank_line's span must equal


def _expected(raw: bytes, pos: int, endpos: int) -> tuple[int, int] | None:
    match = _SEARCHED.search(raw, pos, endpos)
    return match.span() if match else None


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: a\r\n\r\nbody",
        b"Subject: a\n\nbody",
        b"Subject: a\r\n\nbody",
        b"Subject: a\n\r\nbody",
        b"\r\n\r\nbody",
        b"\n\nbody",
        b"Subject: a\r\r\n\r\nbody",
        b"Subject: a\r\nno end",
        b"",
    ],
)
def test_blank_line_spans_what_the_pattern_spans(raw):
    assert blank_line(raw) == _expected(raw, 0, len(raw))


def test_blank_line_agrees_on_random_line_ends_and_bounds():
    rng = random.Random(22)
    for _ in range(20_000):
        raw = bytes(rng.choice(b"\r\n\r\nab") for _ in range(rng.randrange(0, 14)))
        pos = rng.randrange(0, len(raw) + 1)
        endpos = rng.randrange(pos, len(raw) + 1)
        assert blank_line(raw, pos, endpos) == _expected(raw, pos, endpos), (raw, pos, endpos)
        assert blank_line(raw, pos) == _expected(raw, pos, len(raw)), (raw, pos)


def test_header_block_and_bounded_header_cut_at_the_blank_line():
    raw = b"Subject: a\r\nFrom: b@c.example\r\n\r\nbody\r\n\r\nmore"
    assert header_block(raw) == b"Subject: a\r\nFrom: b@c.example\r\n\r\n"
    assert bounded_header(raw, limit=64) == raw
    long = b"".join(b"X-Field-%d: value\r\n" % n for n in range(10)) + b"\r\nbody"
    assert bounded_header(long, limit=40) == b"X-Field-0: value\r\nX-Field-1: value\r\n\r\nbody"


def test_a_field_value_is_unfolded_as_the_regular_expression_did():
    # mime.field_value removes each LF and each CR just before one (what re.sub of \r?\n
    # removed) with two replaces: 20,000 random values of the octets that matter.
    from mailboxes.mime import field_value

    fold = re.compile(rb"\r?\n")
    rng = random.Random(20261204)
    for _ in range(20_000):
        value = bytes(rng.choice(b"\r\n \ta") for _ in range(rng.randrange(0, 24)))
        raw = b"Subject:" + value + b"\r\n"
        expected = fold.sub(b"", value + b"\r\n").strip(b" \t\r\n")
        assert field_value(raw, len(b"Subject:"), len(raw)) == expected, value


# parse_header: the compat32 Message of BytesHeaderParser, whether it is made by the fast
# reading of whole fields or by the parser itself.
_CORPUS = sorted((Path(__file__).resolve().parents[2]).glob("**/*.eml"))


def _parsed(message) -> tuple:  # noqa: ANN001 - a compat32 Message
    return (
        message._headers,
        message.get_unixfrom(),
        message.get_payload(),
        [(type(d), str(d)) for d in message.defects],
    )


def _assert_as_the_parser(block: bytes) -> None:
    expected = BytesHeaderParser(policy=compat32).parsebytes(block)
    parsed = parse_header(block)
    assert _parsed(parsed) == _parsed(expected)
    # get and get_all (a field index on the fast path) find what the parser's Message finds.
    for name in {name for name, _value in expected._headers} | {"Subject", "X-Absent"}:
        for asked in (name, name.lower(), name.upper()):
            assert str(parsed.get(asked)) == str(expected.get(asked))
            assert parsed.get(asked, parsed) is parsed or expected.get(asked, parsed) is not parsed
            assert [str(v) for v in parsed.get_all(asked, [])] == [
                str(v) for v in expected.get_all(asked, [])
            ]
        # field_values: the fields of one name without the Message, the same values and kinds.
        values = field_values(block, name.lower())
        assert [(type(v), str(v)) for v in values] == [
            (type(v), str(v)) for v in expected.get_all(name, [])
        ]
    assert parsed.get_content_type() == expected.get_content_type()
    assert parsed.get_content_charset() == expected.get_content_charset()


def test_a_parsed_header_reads_its_fields_after_they_change() -> None:
    # The field index that get and get_all read is dropped at every change of the fields.
    block = (
        b"Subject: one\r\nContent-Type: multipart/mixed; boundary=a\r\nX-Two: 1\r\nx-two: 2\r\n\r\n"
    )
    parsed = parse_header(block)
    assert parsed.get("x-TWO") == "1" and parsed.get_all("X-Two") == ["1", "2"]
    parsed["X-Two"] = "3"
    assert parsed.get_all("x-two") == ["1", "2", "3"]
    del parsed["X-Two"]
    assert parsed.get("X-Two") is None and parsed.get_all("X-Two") is None
    parsed.set_raw("X-Two", "4")
    assert parsed.get("x-two") == "4"
    parsed.replace_header("subject", "two")
    assert parsed["Subject"] == "two"
    parsed.set_boundary("b")
    assert parsed.get_boundary() == "b"
    parsed.add_header("X-Added", "v", name="p")
    assert parsed.get("x-added") == 'v; name="p"'
    assert parsed.get("subject") == "two" and "X-Two" in parsed


@pytest.mark.parametrize("path", _CORPUS, ids=lambda p: p.name)
def test_parse_header_reads_the_corpus_as_the_email_package(path: Path) -> None:
    raw = path.read_bytes()
    _assert_as_the_parser(header_block(bounded_header(raw)))
    _assert_as_the_parser(raw[:300])  # cut anywhere: no blank line, a partial last line


def test_the_corpus_is_there() -> None:
    assert len(_CORPUS) > 50


@given(st.lists(st.sampled_from(HEADER_LINES), max_size=12).map(b"".join))
@settings(max_examples=500, deadline=None)
def test_parse_header_reads_any_lines_as_the_email_package(block: bytes) -> None:
    _assert_as_the_parser(block)
    _assert_as_the_parser(header_block(block))


def test_header_fields_only_decodes_the_fields_named() -> None:
    raw = b"Received: x\r\nFrom: a@example.com\r\nSubject: s\r\nfrom: b@example.com\r\n\r\nbody"
    assert fulltext.header_fields(raw, only={"from"}) == [
        ("from", "a@example.com"),
        ("from", "b@example.com"),
    ]
    assert len(fulltext.header_fields(raw)) == 4


@pytest.mark.parametrize("path", _CORPUS, ids=lambda p: p.name)
def test_the_summary_reads_the_corpus_as_every_field_decoded(path: Path) -> None:
    # The summary decodes only its own fields, and looks for an attachment line only where
    # the lowered body names the field: the same summary as decoding every field and
    # searching the whole body.
    raw = path.read_bytes()
    block = header_block(bounded_header(raw))
    fields = fulltext.header_fields(block)

    def first(name: str) -> str | None:
        return next((value for field, value in fields if field == name), None)

    summary = summarize(raw)
    for name in ("from", "to", "cc"):
        display, _ = headers._addresses_display([v for f, v in fields if f == name])
        assert summary[f"{name}_display"] == display[: 2000 if name == "from" else 4000]
    assert summary["subject"] == headers.decode_words(first("subject"))[:2000]
    attachment = re.search(rb"(?im)^content-disposition:\s*attachment", raw[len(block) :])
    assert headers._attachment_field(raw[len(block) :]) == bool(attachment)


def test_the_summary_reads_a_header_longer_than_the_mime_parse_reads() -> None:
    # The MIME parse reads the first 64 KB of a header; the summary's fields are then read
    # from the whole (bounded) header block, as for any other message.
    raw = (
        b"X-Long: " + b"a" * (mime.MAX_HEADER_OCTETS - 100) + b"\r\n"
        b"From: Late <late@example.com>\r\nSubject: late\r\n\r\nbody\r\n"
    )
    summary = summarize(raw)
    assert summary["from_address"] == "late@example.com" and summary["subject"] == "late"
    assert summary["preview"] == "body"


def test_an_attachment_line_is_found_in_any_case() -> None:
    body = b"--b\r\nCONTENT-DISPOSITION:\r\n Attachment; filename=a\r\n\r\nx\r\n--b--\r\n"
    assert headers._attachment_field(body)
    assert not headers._attachment_field(b"content-disposition: inline\r\n\r\nx")


def test_a_body_without_the_field_name_is_not_searched(monkeypatch) -> None:  # noqa: ANN001
    searched = []
    monkeypatch.setattr(headers, "_ATTACHMENT_LINE", SimpleNamespace(search=searched.append))
    summary = summarize(b"From: a@example.com\r\nSubject: s\r\n\r\n" + b"no attachment\r\n" * 70)
    assert summary["has_attachments"] is False
    assert searched == []


@pytest.mark.parametrize(
    "values",
    [
        ["Jane <jane@example.org>"],
        ['"it@paypal.example" <x@evil.example>', "b@example.net"],
        ["(comment) a@example.org (another)"],
        ["Group: a@example.org, b@example.org;"],
        ["=?utf-8?q?J=C3=A4ne?= <jane@example.org>"],
        ["not an address", ""],
        ["Jane\r\n <jane@example.org>"],
        [],
    ],
)
def test_address_pairs_are_getaddresses_read_once(values):
    from email.utils import getaddresses

    assert headers.address_pairs(values) == tuple(getaddresses(values))
    assert headers.address_pairs(values) is headers.address_pairs(list(values))  # remembered
    # The white space before a field's value, which delivery.inbound.checks takes off as
    # compat32 does so that both readers share the parse, changes nothing in the pairs.
    assert headers.address_pairs([" \t" + v for v in values]) == headers.address_pairs(values)


# Port 25's Authentication-Results, on top of every message it stores.
_OURS = (
    b"Authentication-Results: mx.example.org;\r\n\tdkim=none;\r\n"
    b"\tspf=none (192.0.2.1 example.com publishes no SPF record) smtp.mailfrom=a@example.com;\r\n"
    b"\tdmarc=none (no DMARC record) header.from=example.com;\r\n\tarc=none\r\n"
)


def _read_as_a_whole(raw: bytes) -> None:
    """header_read past our field reads what the whole message reads: the summary, the
    spam flag and every other field of the compat32 header, with its defects."""
    whole, below = headers.header_read(_OURS + raw), headers.header_read(_OURS + raw, len(_OURS))
    assert below.summary == whole.summary and below.spam == whole.spam
    # Without our field when it was skipped (the message may carry others' below it).
    assert below.parsed._headers in (whole.parsed._headers[1:], whole.parsed._headers)
    for name in ("From", "Message-ID", "Content-Type", "Subject", "X-Spam", "Date"):
        assert str(below.parsed.get(name)) == str(whole.parsed.get(name))
    assert below.parsed.get_content_type() == whole.parsed.get_content_type()
    assert below.parsed.get_content_charset() == whole.parsed.get_content_charset()


@pytest.mark.parametrize("path", _CORPUS, ids=lambda p: p.name)
def test_the_header_below_our_field_reads_the_corpus_as_the_whole(path: Path) -> None:
    _read_as_a_whole(path.read_bytes())


@given(st.lists(st.sampled_from(HEADER_LINES), max_size=12).map(b"".join))
@settings(max_examples=300, deadline=None)
def test_the_header_below_our_field_reads_any_lines_as_the_whole(block: bytes) -> None:
    _read_as_a_whole(block + b"\r\nthe body\r\n")


@pytest.mark.parametrize(
    "raw",
    [
        b"From x@y Sat Jan  1 00:00:00 2000\r\nSubject: a\r\nMessage-ID: <a@b>\r\n\r\nbody",
        b" folded first\r\nSubject: a\r\n\r\nbody",
        b"\r\nno header at all",
        b"no colon\r\nSubject: a\r\n\r\nbody",
        # Near the limit: our field takes the whole header past MAX_HEADER_OCTETS.
        b"X-Long: " + b"a" * (headers.MAX_HEADER_OCTETS - 120) + b"\r\n"
        b"From: Late <late@example.com>\r\nSubject: late\r\n\r\nbody\r\n",
        b"X-Long: " + b"a" * (headers.MAX_HEADER_OCTETS - 400) + b"\r\n"
        b"From: Late <late@example.com>\r\nSubject: late\r\n\r\nbody\r\n",
    ],
)
def test_the_header_below_our_field_reads_odd_headers_as_the_whole(raw: bytes) -> None:
    _read_as_a_whole(raw)


def test_the_header_below_our_field_is_read_without_it(monkeypatch) -> None:  # noqa: ANN001
    blocks: list[bytes] = []
    real = headers.parse_header
    monkeypatch.setattr(headers, "parse_header", lambda block: blocks.append(block) or real(block))
    raw = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    headers.header_read(_OURS + raw, len(_OURS))
    headers.header_read(_OURS + b"From x@y Sat Jan  1 00:00:00 2000\r\n" + raw, len(_OURS))
    large = raw + b"a" * headers.OURS_COPIED_OCTETS
    headers.header_read(_OURS + large, len(_OURS))
    assert blocks[0] == b"From: a@example.com\r\nSubject: s\r\n\r\n"
    assert blocks[1].startswith(b"Authentication-Results:")  # an envelope line: read whole
    assert blocks[2].startswith(b"Authentication-Results:")  # not copied: read whole

"""Hostile input against the sans-IO parsers (IMAP, POP3) and the SMTP syntax module.

Property tests with hypothesis: whatever bytes arrive, in whatever split, the parsers return
only their documented results (a command, a parse error, or "need more data") and recover for
the next well-formed command. The example count is MAILHOST_FUZZ_EXAMPLES (default 300 per
property; the full run uses 5000):

    MAILHOST_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/security/test_hostile_parsers.py
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.imap import parser as imap
from protocols.pop3 import parser as pop3
from protocols.smtp import syntax

EXAMPLES = int(os.environ.get("MAILHOST_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MAX_LINE = 8192
MAX_LITERAL = 65536

# Fragments that steer random input towards the grammar's corners.
IMAP_PIECES = st.sampled_from(
    [
        b"a1 ",
        b"UID ",
        b"FETCH 1:* (BODY[HEADER.FIELDS (From)]<0.10>)",
        b"SEARCH ",
        b"APPEND INBOX ",
        b"LOGIN ",
        b"SELECT ",
        b"(",
        b")",
        b"[",
        b"]",
        b'"',
        b"\\",
        b"{5}",
        b"{5+}",
        b"~{3}",
        b"{99999999999999999999}",
        b"{0}",
        b"\x00",
        b"\xff\xfe",
        b"&AGE-",
        b"&",
        b"*",
        b"%",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"4294967296",
        b"1:*,$",
        b"NIL",
    ]
)
IMAP_INPUT = st.lists(st.one_of(IMAP_PIECES, st.binary(max_size=40)), max_size=40).map(b"".join)


def _imap_parser() -> imap.Parser:
    return imap.Parser(max_line=MAX_LINE, max_literal=MAX_LITERAL)


def _imap_drain(parser: imap.Parser) -> list:
    """Every result until the parser asks for data; each must be a documented result."""
    results = []
    for _ in range(10_000):
        result = parser.next_command()
        if result is imap.NEED_DATA:
            return results
        if result is imap.NEED_CONTINUATION:
            results.append(result)
            continue
        assert isinstance(result, imap.Command | imap.ParseError), result
        if isinstance(result, imap.ParseError):
            assert result.status in ("BAD", "NO")
            assert isinstance(result.tag, str) and result.tag
        results.append(result)
    raise AssertionError("parser never asked for more data")


def _imap_recovers(parser: imap.Parser) -> None:
    """After any input, a line end and the bytes a pending literal still wants, NOOP parses."""
    parser.feed(b"\r\n")
    _imap_drain(parser)
    while parser._literal_needed is not None:  # a literal announced earlier swallows bytes
        parser.feed(b"x" * parser._literal_needed + b"\r\n")
        _imap_drain(parser)
    parser.feed(b"\r\n")  # ends a command whose last literal was just satisfied
    _imap_drain(parser)
    parser.feed(b"zz9 NOOP\r\n")
    assert _imap_drain(parser)[-1] == imap.Simple("zz9", "NOOP")


@FUZZ
@given(data=IMAP_INPUT, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_imap_parser_any_bytes_any_split(data, cuts):
    parser = _imap_parser()
    whole = _imap_parser()
    whole.feed(data)
    expected = _imap_drain(whole)
    got = []
    start = 0
    for cut in sorted(set(c for c in cuts if c < len(data))) + [len(data)]:
        parser.feed(data[start:cut])
        got.extend(_imap_drain(parser))
        start = cut
    # Splitting the stream changes nothing but how often a continuation is asked for.
    strip = [r for r in got if r is not imap.NEED_CONTINUATION]
    assert strip == [r for r in expected if r is not imap.NEED_CONTINUATION]
    _imap_recovers(parser)


@FUZZ
@given(st.binary(max_size=3000))
def test_imap_parser_random_bytes(data):
    parser = _imap_parser()
    parser.feed(data)
    _imap_drain(parser)
    _imap_recovers(parser)


@FUZZ
@given(
    command=st.sampled_from([b"a APPEND INBOX", b"a LOGIN", b"a SELECT", b"a SEARCH TEXT"]),
    size=st.integers(min_value=1, max_value=MAX_LITERAL),
    sent=st.integers(min_value=0, max_value=100),
)
def test_imap_truncated_literal_waits_then_completes(command, size, sent):
    parser = _imap_parser()
    parser.feed(command + b" {%d}\r\n" % size + b"y" * min(sent, size - 1))
    assert _imap_drain(parser) in ([imap.NEED_CONTINUATION], [])
    assert parser._literal_needed == size  # still waiting: nothing was taken as a command
    parser.feed(b"y" * (size - min(sent, size - 1)) + b"\r\n")
    result = _imap_drain(parser)[-1]
    assert isinstance(result, imap.Command | imap.ParseError)
    _imap_recovers(parser)


@pytest.mark.parametrize("size", [MAX_LITERAL + 1, 10**12, 10**19, 99999999999999999999])
def test_imap_huge_synchronizing_literal_is_refused_and_never_awaited(size):
    parser = _imap_parser()
    parser.feed(b"a1 APPEND INBOX {%d}\r\n" % size)
    [result] = _imap_drain(parser)
    assert (result.tag, result.status, result.code) == ("a1", "NO", "TOOBIG")
    assert parser._literal_needed is None
    parser.feed(b"a2 NOOP\r\n")
    assert _imap_drain(parser) == [imap.Simple("a2", "NOOP")]


def test_imap_huge_non_synchronizing_literal_is_fatal():
    parser = _imap_parser()
    parser.feed(b"a1 APPEND INBOX {99999999999+}\r\n")
    [result] = _imap_drain(parser)
    assert result.fatal and result.code == "TOOBIG"


def test_imap_one_megabyte_line_is_refused_in_pieces_and_recovers():
    parser = _imap_parser()
    parser.feed(b"big1 LOGIN ")
    for _ in range(64):
        parser.feed(b"a" * 16384)
        assert _imap_drain(parser) == []
    assert len(parser._buf) <= MAX_LINE + 16384  # the long line is dropped, not kept
    parser.feed(b"\r\nz NOOP\r\n")
    first, second = _imap_drain(parser)
    assert (first.tag, first.code) == ("big1", "TOOBIG")
    assert second == imap.Simple("z", "NOOP")


@pytest.mark.parametrize("depth", [100, 1000, 4000])
@pytest.mark.parametrize(
    "prefix", [b"a SEARCH ", b"a FETCH 1 ", b"a STORE 1 FLAGS ", b"a LIST ", b"a ID "]
)
def test_imap_deeply_nested_lists(prefix, depth):
    parser = _imap_parser()
    parser.feed(prefix + b"(" * depth + b"ALL" + b")" * depth + b"\r\n")
    [result] = _imap_drain(parser)
    assert isinstance(result, imap.Command | imap.ParseError)
    _imap_recovers(parser)


@pytest.mark.parametrize(
    "line",
    [
        b"a\x00 NOOP",
        b"a NO\x00OP",
        b'a LOGIN "al\x00ice" "x"',
        b'a SELECT "INB\x00OX"',
        b"a SELECT \xff\xfe\xfd",
        b'a SELECT "\xc3\x28"',
        b"\xed\xa0\x80 NOOP",
        b"a SELECT &Jjo",
        b"a SELECT &-&-&",
        b"a SELECT &AAA-",
        b"a FETCH 99999999999999999999 FLAGS",
        b"a FETCH 1:4294967296 FLAGS",
        b"a UID",
        b"a",
        b"",
        b"*",
        b"+ NOOP",
    ],
)
def test_imap_nul_and_invalid_utf8_give_parse_errors(line):
    parser = _imap_parser()
    parser.feed(line + b"\r\n")
    results = _imap_drain(parser)
    assert all(isinstance(r, imap.ParseError) for r in results), results
    _imap_recovers(parser)


# --- POP3 ---------------------------------------------------------------------------------

POP3_PIECES = st.sampled_from(
    [
        b"USER ",
        b"PASS ",
        b"AUTH PLAIN ",
        b"RETR ",
        b"TOP 1 ",
        b"LIST",
        b"UIDL",
        b"99999999999",
        b"-1",
        b"\x00",
        b"\xff",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"  ",
        b"*",
    ]
)
POP3_INPUT = st.lists(st.one_of(POP3_PIECES, st.binary(max_size=40)), max_size=40).map(b"".join)
POP3_RESULTS = (
    pop3.User,
    pop3.Pass,
    pop3.Auth,
    pop3.SaslResponse,
    pop3.Capa,
    pop3.Stls,
    pop3.Quit,
    pop3.Stat,
    pop3.List,
    pop3.Retr,
    pop3.Dele,
    pop3.Noop,
    pop3.Rset,
    pop3.Top,
    pop3.Uidl,
    pop3.UnknownCommand,
    pop3.BadArguments,
    pop3.LineTooLong,
)


def _pop3_drain(parser: pop3.Parser) -> list:
    results = []
    for _ in range(10_000):
        event = parser.next_event()
        if event is pop3.NEED_DATA:
            return results
        assert isinstance(event, POP3_RESULTS), event
        results.append(event)
    raise AssertionError("parser never asked for more data")


def _pop3_recovers(parser: pop3.Parser) -> None:
    parser.receive_data(b"\r\nNOOP\r\n")
    assert _pop3_drain(parser)[-1] == pop3.Noop()


@FUZZ
@given(data=POP3_INPUT, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_pop3_parser_any_bytes_any_split(data, cuts):
    whole = pop3.Parser(max_line_length=512)
    whole.receive_data(data)
    expected = _pop3_drain(whole)
    parser = pop3.Parser(max_line_length=512)
    got = []
    start = 0
    for cut in sorted(set(c for c in cuts if c < len(data))) + [len(data)]:
        parser.receive_data(data[start:cut])
        got.extend(_pop3_drain(parser))
        start = cut
    if not any(isinstance(e, pop3.LineTooLong) for e in expected + got):
        assert got == expected
    _pop3_recovers(parser)


@FUZZ
@given(st.binary(max_size=5000))
def test_pop3_parser_random_bytes(data):
    parser = pop3.Parser(max_line_length=512)
    parser.receive_data(data)
    _pop3_drain(parser)
    _pop3_recovers(parser)


def test_pop3_one_megabyte_line_is_dropped_and_recovers():
    parser = pop3.Parser(max_line_length=2048)
    for _ in range(64):
        parser.receive_data(b"U" * 16384)
        _pop3_drain(parser)
        assert parser.buffered <= 2048 + 16384
    parser.receive_data(b"\r\nSTAT\r\n")
    assert _pop3_drain(parser)[-1] == pop3.Stat()


# --- SMTP syntax (the argument parsing behind MAIL/RCPT) ----------------------------------

SMTP_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(list('<>@:,."\\[]+= \t\x00')), st.characters(codec="utf-8")),
    max_size=200,
)


@FUZZ
@given(SMTP_TEXT, st.booleans())
def test_smtp_split_path_returns_or_raises_syntax_problem(text, postmaster):
    try:
        address, rest = syntax.split_path(text, allow_postmaster=postmaster)
    except syntax.SyntaxProblem as problem:
        assert problem.reply
    else:
        assert isinstance(address, str) and isinstance(rest, str)


@FUZZ
@given(SMTP_TEXT)
def test_smtp_mail_params_return_or_raise_syntax_problem(text):
    try:
        params = syntax.parse_mail_params(text, max_size=10_000_000)
    except syntax.SyntaxProblem as problem:
        assert problem.reply
    else:
        assert isinstance(params, syntax.MailParams)


@FUZZ
@given(SMTP_TEXT)
def test_smtp_rcpt_params_return_or_raise_syntax_problem(text):
    try:
        params = syntax.parse_rcpt_params(text)
    except syntax.SyntaxProblem as problem:
        assert problem.reply
    else:
        assert params is not None

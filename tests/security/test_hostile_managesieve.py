"""Hostile input against the ManageSieve parser (sans-IO, protocols/managesieve/parser.py):
whatever bytes arrive, in whatever split, it returns only its documented events, never
raises, buffers no more than its limits, and reads the next well-formed command correctly
(MAILHOST_FUZZ_EXAMPLES examples per property, as tests/security/test_hostile_parsers.py)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.managesieve import parser as P

EXAMPLES = int(os.environ.get("MAILHOST_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_LINE, MAX_LITERAL = 1024, 4096

PIECES = st.sampled_from(
    [
        b"PUTSCRIPT ",
        b"AUTHENTICATE ",
        b"HAVESPACE ",
        b"RENAMESCRIPT ",
        b"NOOP ",
        b'"',
        b"\\",
        b'\\"',
        b"{5+}",
        b"{5}",
        b"{0+}",
        b"{99999999999999999999+}",
        b"{4097+}",
        b"4294967296",
        b"\x00",
        b"\xff\xfe",
        b"*",
        b" ",
        b"\r\n",
        b"\n",
        b"keep;",
    ]
)
KNOWN = (
    P.Authenticate,
    P.StartTls,
    P.Logout,
    P.Capability,
    P.HaveSpace,
    P.PutScript,
    P.ListScripts,
    P.SetActive,
    P.GetScript,
    P.DeleteScript,
    P.RenameScript,
    P.CheckScript,
    P.Noop,
    P.Unauthenticate,
    P.SaslResponse,
    P.UnknownCommand,
    P.BadSyntax,
    P.LineTooLong,
    P.LiteralTooLarge,
)


def drain(parser: P.Parser) -> list:
    events = []
    while (event := parser.next_event()) is not P.NEED_DATA:
        assert isinstance(event, KNOWN), event
        events.append(event)
        assert len(events) < 100_000
    return events


def recovers(parser: P.Parser) -> None:
    """After any input, a clean line (and a literal's worth, if one was pending) brings the
    parser back: a well-formed command then comes out as itself."""
    parser.discard_buffered()
    parser.receive_data(b'\r\nPUTSCRIPT "ok" {5+}\r\nkeep;\r\n')
    assert P.PutScript("ok", b"keep;") in drain(parser)


@FUZZ
@given(
    data=st.lists(st.one_of(PIECES, st.binary(max_size=40)), max_size=60).map(b"".join),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=20),
    fatal=st.booleans(),
    sasl=st.booleans(),
)
def test_any_bytes_any_split(data, cuts, fatal, sasl):
    parser = P.Parser(max_line_length=MAX_LINE, max_literal=MAX_LITERAL, fatal_literals=fatal)
    if sasl:
        parser.expect_sasl_response()
    position = 0
    for cut in [*cuts, len(data)]:
        parser.receive_data(data[position : position + cut])
        position += cut
        drain(parser)
        assert parser.buffered <= MAX_LINE + MAX_LITERAL + P.COMMAND_OVERHEAD + 60
    recovers(parser)


@FUZZ
@given(size=st.integers(min_value=MAX_LITERAL + 1, max_value=10**12))
def test_huge_literals_are_never_buffered(size):
    parser = P.Parser(max_line_length=MAX_LINE, max_literal=MAX_LITERAL, fatal_literals=False)
    parser.receive_data(b'PUTSCRIPT "x" {%d+}\r\n' % size + b"a" * min(size, 10_000))
    assert drain(parser) == []
    assert parser.buffered == 0  # the literal's octets are dropped as they come
    if size <= 10_000:
        parser.receive_data(b"\r\nNOOP\r\n")
        assert drain(parser) == [P.LiteralTooLarge("PUTSCRIPT", size), P.Noop()]


def test_a_megabyte_line_is_refused_in_pieces():
    parser = P.Parser(max_line_length=MAX_LINE, max_literal=MAX_LITERAL)
    events = []
    for _ in range(1024):
        parser.receive_data(b"x" * 1024)
        events += drain(parser)
        assert parser.buffered <= MAX_LINE + 1024
    assert events and all(isinstance(e, P.LineTooLong) for e in events)

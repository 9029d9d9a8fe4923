"""The ManageSieve parser without a socket: byte literals in, events out."""

from __future__ import annotations

import pytest

from protocols.managesieve import parser as P


def parse(*chunks: bytes, max_literal: int = 1000, fatal: bool = False) -> list:
    parser = P.Parser(max_line_length=1024, max_literal=max_literal, fatal_literals=fatal)
    events = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not P.NEED_DATA:
            events.append(event)
    return events


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"CAPABILITY\r\n", P.Capability()),
        (b"logout\r\n", P.Logout()),
        (b"STARTTLS\n", P.StartTls()),
        (b'AUTHENTICATE "PLAIN" "AGEAYg=="\r\n', P.Authenticate("PLAIN", b"AGEAYg==")),
        (b"AUTHENTICATE plain\r\n", P.Authenticate("PLAIN")),
        (b'AUTHENTICATE "PLAIN" {8+}\r\nAGEAYg==\r\n', P.Authenticate("PLAIN", b"AGEAYg==")),
        (b'HAVESPACE "a b" 1000\r\n', P.HaveSpace("a b", 1000)),
        (b'PUTSCRIPT "x" {5+}\r\nkeep;\r\n', P.PutScript("x", b"keep;")),
        (b'PUTSCRIPT "x" {5}\r\nkeep;\r\n', P.PutScript("x", b"keep;")),
        (b"PUTSCRIPT {1+}\r\nx {0+}\r\n\r\n", P.PutScript("x", b"")),
        (b"LISTSCRIPTS\r\n", P.ListScripts()),
        (b'SETACTIVE ""\r\n', P.SetActive("")),
        (b'GETSCRIPT "a \\"q\\" \\\\"\r\n', P.GetScript('a "q" \\')),
        (b'DELETESCRIPT "caf\xc3\xa9"\r\n', P.DeleteScript("caf\u00e9")),
        (b'RENAMESCRIPT "a" "b"\r\n', P.RenameScript("a", "b")),
        (b"CHECKSCRIPT {7+}\r\nkeep;\r\n\r\n", P.CheckScript(b"keep;\r\n")),
        (b"NOOP\r\n", P.Noop()),
        (b'NOOP "tag"\r\n', P.Noop("tag")),
        (b"UNAUTHENTICATE\r\n", P.Unauthenticate()),
    ],
)
def test_commands(data, expected):
    assert parse(data) == [expected]


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"FOO\r\n", P.UnknownCommand("FOO")),
        (b"LOGOUT now\r\n", P.BadSyntax("LOGOUT", "Wrong number of arguments")),
        (b'HAVESPACE "a" -1\r\n', P.BadSyntax("HAVESPACE", "Expected a number")),
        (b'HAVESPACE "a" 99999999999\r\n', P.BadSyntax("HAVESPACE", "Expected a number")),
        (b"GETSCRIPT name\r\n", P.BadSyntax("GETSCRIPT", "Expected a string")),
        (b'GETSCRIPT "a\\x"\r\n', P.BadSyntax("GETSCRIPT", "Bad escape in quoted string")),
        (b'GETSCRIPT "a"b\r\n', P.BadSyntax("GETSCRIPT", "Missing space after quoted string")),
        (b'GETSCRIPT "\xff"\r\n', P.BadSyntax("GETSCRIPT", "String is not UTF-8")),
        (b'PUTSCRIPT "x" "keep;" "y"\r\n', P.BadSyntax("PUTSCRIPT", "Wrong number of arguments")),
    ],
)
def test_refused_input(data, expected):
    assert parse(data) == [expected]


def test_split_reads_and_pipelining():
    data = b'PUTSCRIPT "x" {12+}\r\nkeep;\r\nstop;\r\nLISTSCRIPTS\r\nNOOP\r\n'
    whole = parse(data)
    assert whole == [P.PutScript("x", b"keep;\r\nstop;"), P.ListScripts(), P.Noop()]
    assert parse(*(data[i : i + 1] for i in range(len(data)))) == whole


def test_an_oversized_literal_is_skipped_after_login():
    events = parse(
        b'PUTSCRIPT "x" {2000+}\r\n', b"a" * 1500, b"a" * 500 + b"\r\nNOOP\r\n", max_literal=1000
    )
    assert events == [P.LiteralTooLarge("PUTSCRIPT", 2000), P.Noop()]


def test_an_oversized_literal_before_login_is_fatal():
    assert parse(b'AUTHENTICATE "PLAIN" {5000+}\r\n', max_literal=1000, fatal=True) == [
        P.LiteralTooLarge("AUTHENTICATE", 5000, fatal=True)
    ]


def test_an_overlong_line():
    assert parse(b"NOOP " + b"x" * 2000) == [P.LineTooLong()]


def test_sasl_responses():
    parser = P.Parser(max_line_length=1024, max_literal=100)
    parser.expect_sasl_response()
    parser.receive_data(b'"AGEAYg=="\r\nNOOP\r\n')
    assert parser.next_event() == P.SaslResponse(b"AGEAYg==")
    assert parser.next_event() == P.Noop()
    parser.expect_sasl_response()
    parser.receive_data(b"{4+}\r\nYWJj\r\n")
    assert parser.next_event() == P.SaslResponse(b"YWJj")
    parser.expect_sasl_response()
    parser.receive_data(b'"*"\r\n')
    assert parser.next_event() == P.SaslResponse(b"", cancelled=True)
    parser.expect_sasl_response()
    parser.receive_data(b"*\r\n")
    assert parser.next_event() == P.SaslResponse(b"", cancelled=True)


def test_discard_buffered_drops_what_came_in_the_clear():
    parser = P.Parser(max_line_length=1024, max_literal=100)
    parser.receive_data(b"STARTTLS\r\nLOGOUT\r\n")
    assert parser.next_event() == P.StartTls()
    assert parser.discard_buffered() == len(b"LOGOUT\r\n")
    assert parser.next_event() is P.NEED_DATA

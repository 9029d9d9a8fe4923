"""The sans-IO parser: byte literals in, command dataclasses out; no socket."""

from __future__ import annotations

import pytest

from protocols.pop3 import parser as P


def events(parser: P.Parser) -> list:
    out = []
    while (event := parser.next_event()) is not P.NEED_DATA:
        out.append(event)
    return out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("USER alice@example.org", P.User("alice@example.org")),
        ("user alice", P.User("alice")),
        ("PASS with  two spaces ", P.Pass("with  two spaces ")),
        ("AUTH", P.Auth(None)),
        ("AUTH plain", P.Auth("PLAIN")),
        ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", P.Auth("PLAIN", "AGFsaWNlAHNlY3JldA==")),
        ("AUTH PLAIN =", P.Auth("PLAIN", "=")),
        ("CAPA", P.Capa()),
        ("STLS", P.Stls()),
        ("QUIT", P.Quit()),
        ("STAT", P.Stat()),
        ("LIST", P.List()),
        ("LIST 7", P.List(7)),
        ("RETR 1", P.Retr(1)),
        ("DELE 12", P.Dele(12)),
        ("NOOP", P.Noop()),
        ("RSET", P.Rset()),
        ("TOP 3 0", P.Top(3, 0)),
        ("UIDL", P.Uidl()),
        ("UIDL 0001", P.Uidl(1)),
        ("noop ", P.Noop()),
    ],
)
def test_commands(line, expected):
    assert P.parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("HELO", P.UnknownCommand("HELO")),
        ("", P.UnknownCommand("")),
        ("APOP a b", P.UnknownCommand("APOP")),
        ("USER", P.BadArguments("USER")),
        ("USER a b", P.BadArguments("USER")),
        ("PASS", P.BadArguments("PASS")),
        ("LIST x", P.BadArguments("LIST")),
        ("LIST +1", P.BadArguments("LIST")),
        ("LIST -1", P.BadArguments("LIST")),
        ("LIST 1 2", P.BadArguments("LIST")),
        ("LIST  1", P.BadArguments("LIST")),
        ("LIST 12345678901", P.BadArguments("LIST")),
        ("LIST ١", P.BadArguments("LIST")),  # a non-ASCII digit is not a number
        ("RETR", P.BadArguments("RETR")),
        ("TOP 1", P.BadArguments("TOP")),
        ("TOP 1 x", P.BadArguments("TOP")),
        ("STAT 1", P.BadArguments("STAT")),
        ("QUIT now", P.BadArguments("QUIT")),
        ("AUTH PLAIN a b", P.BadArguments("AUTH")),
    ],
)
def test_refused_lines(line, expected):
    assert P.parse_line(line) == expected


def test_split_reads_and_pipelining():
    parser = P.Parser()
    parser.receive_data(b"ST")
    assert parser.next_event() is P.NEED_DATA
    parser.receive_data(b"AT\r")
    assert parser.next_event() is P.NEED_DATA
    parser.receive_data(b"\nLIST 1\r\nRETR 2\nNO")
    assert events(parser) == [P.Stat(), P.List(1), P.Retr(2)]
    parser.receive_data(b"OP\r\n")
    assert events(parser) == [P.Noop()]


def test_overlong_line_is_dropped_to_its_end():
    parser = P.Parser(max_line_length=512)
    parser.receive_data(b"NOOP " + b"x" * 600)
    assert parser.next_event() == P.LineTooLong()
    parser.receive_data(b"y" * 10_000)  # still the same line: dropped, not buffered
    assert parser.buffered == 0
    assert parser.next_event() is P.NEED_DATA
    parser.receive_data(b"zz\r\nSTAT\r\n")
    assert events(parser) == [P.Stat()]


def test_overlong_line_with_its_end_in_the_same_read():
    parser = P.Parser(max_line_length=512)
    parser.receive_data(b"x" * 600 + b"\r\nQUIT\r\n")
    assert events(parser) == [P.LineTooLong(), P.Quit()]


def test_line_of_exactly_the_limit_is_accepted():
    parser = P.Parser(max_line_length=512)
    password = "p" * (512 - len("PASS \r\n"))  # the limit counts CRLF
    parser.receive_data(f"PASS {password}\r\n".encode())
    assert events(parser) == [P.Pass(password)]


def test_sasl_response_is_not_parsed_as_a_command():
    parser = P.Parser()
    parser.expect_sasl_response()
    parser.receive_data(b"QUIT\r\nQUIT\r\n")
    assert events(parser) == [P.SaslResponse("QUIT"), P.Quit()]


def test_discard_buffered_drops_pipelined_plaintext():
    parser = P.Parser()
    parser.receive_data(b"STLS\r\nUSER evil\r\n")
    assert parser.next_event() == P.Stls()
    assert parser.discard_buffered() == len(b"USER evil\r\n")
    assert parser.next_event() is P.NEED_DATA


def test_non_utf8_bytes_do_not_crash():
    parser = P.Parser()
    parser.receive_data(b"\xff\xfe\r\nPASS \xff\r\n")
    assert events(parser) == [P.UnknownCommand("\ufffd\ufffd"), P.Pass("\ufffd")]


def test_line_one_over_the_limit_is_refused():
    parser = P.Parser(max_line_length=512)
    password = "p" * (513 - len("PASS \r\n"))
    parser.receive_data(f"PASS {password}\r\nSTAT\r\n".encode())
    assert events(parser) == [P.LineTooLong(), P.Stat()]

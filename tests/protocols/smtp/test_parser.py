"""The sans-IO SMTP parser and state table, without sockets: commands, hostile lines, DATA
and BDAT framing, AUTH response lines, PROXY headers, input split at every octet."""

from __future__ import annotations

import struct

import pytest

from protocols import proxy
from protocols.smtp import replies
from protocols.smtp.parser import (
    NEED_DATA,
    BadCommand,
    Command,
    DataChunk,
    Line,
    Parser,
)
from protocols.smtp.states import State, after, refusal


def events(parser: Parser) -> list:
    out = []
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def fed(data: bytes, *, max_line: int = 1000) -> list:
    parser = Parser(max_line=max_line)
    parser.receive_data(data)
    return events(parser)


# --- commands --------------------------------------------------------------------------------


def test_a_command_and_its_argument():
    assert fed(b"mail FROM:<a@b.example>  SIZE=10 \r\n") == [
        Command("MAIL", "FROM:<a@b.example>  SIZE=10")
    ]
    assert fed(b"NOOP\r\n") == [Command("NOOP", None)]
    assert fed(b"NOOP    \r\n") == [Command("NOOP", None)]


def test_pipelined_commands_split_at_every_octet_come_out_whole_and_in_order():
    stream = b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
    expected = fed(stream)
    assert [e.verb for e in expected] == ["EHLO", "MAIL", "RCPT", "DATA"]
    for cut in range(len(stream) + 1):
        parser = Parser(max_line=1000)
        parser.receive_data(stream[:cut])
        got = events(parser)
        parser.receive_data(stream[cut:])
        assert got + events(parser) == expected, cut
    parser = Parser(max_line=1000)
    got = []
    for octet in stream:
        parser.receive_data(bytes([octet]))
        got += events(parser)
    assert got == expected


def test_command_waiting_sees_a_whole_buffered_line():
    parser = Parser(max_line=1000)
    parser.receive_data(b"NOOP\r\nNO")
    assert parser.command_waiting()
    parser.next_event()
    assert not parser.command_waiting()
    assert parser.buffered == 2


@pytest.mark.parametrize(
    "line,reply",
    [
        (b"NOOP\n", replies.S500_BARE_LINE_ENDING),
        (b"NOOP\rx\r\n", replies.S500_BARE_LINE_ENDING),
        (b"NO\rOP\n", replies.S500_BARE_LINE_ENDING),
        (b" \r\n", replies.S500_BAD_SYNTAX),
        (b"\r\n", replies.S500_BAD_SYNTAX),
        (b"\x00\x01\x02\r\n", replies.S500_UNRECOGNIZED),
        (b"NO\x00OP\r\n", replies.S500_UNRECOGNIZED),
        ("ÉHLO x\r\n".encode(), replies.S500_UNRECOGNIZED),
        (b"GET / HTTP/1.1\r\n", replies.S500_UNRECOGNIZED),
        (b"XCLIENT ADDR=1.2.3.4\r\n", replies.S500_UNRECOGNIZED),
        (b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 25\r\n", replies.S500_UNRECOGNIZED),
    ],
)
def test_hostile_lines_get_their_500(line, reply):
    assert fed(line + b"NOOP\r\n") == [BadCommand(reply), Command("NOOP", None)]


def test_nul_and_bytes_that_are_not_utf8_in_an_argument_reach_the_session():
    (command,) = fed(b"MAIL FROM:<\xff@x.example>\x00\r\n")
    assert command.verb == "MAIL"
    assert command.arg == "FROM:<\udcff@x.example>\x00"


def test_line_length_counts_the_crlf():
    assert fed(b"NOOP " + b"x" * 993 + b"\r\n") == [Command("NOOP", "x" * 993)]
    assert fed(b"NOOP " + b"x" * 994 + b"\r\nNOOP\r\n") == [
        BadCommand(replies.S500_LINE_TOO_LONG),
        Command("NOOP", None),
    ]


def test_an_endless_line_is_dropped_as_it_comes_and_answered_once():
    parser = Parser(max_line=1000)
    for _ in range(100):
        parser.receive_data(b"A" * 4096)
        assert parser.next_event() is NEED_DATA
        assert parser.buffered <= 4096  # never held whole
    parser.receive_data(b"A\r\nNOOP\r\n")
    assert events(parser) == [BadCommand(replies.S500_LINE_TOO_LONG), Command("NOOP", None)]


# --- DATA ------------------------------------------------------------------------------------


def data_of(parser: Parser) -> tuple[bytes, list]:
    """The message DATA's events give, and the events after it."""
    message, rest = b"", []
    for event in events(parser):
        if isinstance(event, DataChunk):
            message += event.data
            if event.end:
                parser_rest = events(parser)
                return message, rest + parser_rest
        else:
            rest.append(event)
    raise AssertionError("no end of data")


def test_data_ends_only_at_crlf_dot_crlf_and_pipelined_commands_follow():
    message = b"Subject: x\r\n\r\n..stuffed\r\n.\n\r.\r\nbare LF .\n.\nend\r\n"
    stream = message + b".\r\nRSET\r\nQUIT\r\n"
    for cut in range(len(stream) + 1):
        parser = Parser(max_line=1000)
        parser.start_data()
        parser.receive_data(stream[:cut])
        got = events(parser)
        parser.receive_data(stream[cut:])
        got += events(parser)
        data = b"".join(e.data for e in got if isinstance(e, DataChunk))
        assert data == message, cut
        ends = [e for e in got if isinstance(e, DataChunk) and e.end]
        assert len(ends) == 1 and isinstance(got[-3], DataChunk) and got[-3].end
        assert got[-2:] == [Command("RSET", None), Command("QUIT", None)]


def test_empty_message_and_a_message_of_one_dot_line():
    parser = Parser(max_line=1000)
    parser.start_data()
    parser.receive_data(b".\r\nNOOP\r\n")
    assert events(parser) == [DataChunk(b"", end=True), Command("NOOP", None)]
    parser.start_data()
    parser.receive_data(b"..\r\n.\r\n")
    assert events(parser) == [DataChunk(b"..\r\n", end=True)]


def test_data_is_handed_out_as_it_comes_except_a_short_tail():
    parser = Parser(max_line=1000)
    parser.start_data()
    parser.receive_data(b"x" * 100_000)
    (chunk,) = events(parser)
    assert chunk == DataChunk(b"x" * 99_996, end=False)
    assert parser.buffered == 4
    parser.receive_data(b"\r\n.\r\n")
    assert events(parser) == [DataChunk(b"xxxx\r\n", end=True)]


def test_data_lines_are_not_bound_by_the_command_line_limit():
    parser = Parser(max_line=10)
    parser.start_data()
    parser.receive_data(b"y" * 5000 + b"\r\n.\r\n")
    assert b"".join(e.data for e in events(parser)) == b"y" * 5000 + b"\r\n"


# --- BDAT ------------------------------------------------------------------------------------


def test_bdat_chunk_takes_exactly_its_size_whatever_the_bytes():
    payload = b"BDAT 5\r\n.\r\n\x00\n\r"
    stream = payload + b"NOOP\r\n"
    for cut in range(len(stream) + 1):
        parser = Parser(max_line=1000)
        parser.start_chunk(len(payload))
        parser.receive_data(stream[:cut])
        got = events(parser)
        parser.receive_data(stream[cut:])
        got += events(parser)
        assert b"".join(e.data for e in got if isinstance(e, DataChunk)) == payload
        assert got[-2] == DataChunk(got[-2].data, end=True)
        assert got[-1] == Command("NOOP", None)


def test_bdat_zero_octets():
    parser = Parser(max_line=1000)
    parser.start_chunk(0)
    assert parser.next_event() == DataChunk(b"", end=True)
    assert parser.next_event() is NEED_DATA


# --- AUTH response lines -----------------------------------------------------------------------


def test_a_response_line_is_any_line_stripped():
    parser = Parser(max_line=10)
    parser.start_line()
    parser.receive_data(b"  " + b"QUJD" * 100 + b"\nNOOP\r\n")
    assert events(parser) == [Line(b"QUJD" * 100), Command("NOOP", None)]
    parser.start_line()
    parser.receive_data(b"*\r\n")
    assert events(parser) == [Line(b"*")]


def test_an_endless_response_line_is_dropped():
    parser = Parser(max_line=1000)
    parser.start_line()
    parser.receive_data(b"A" * 70_000)
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"\r\nNOOP\r\n")
    assert events(parser) == [Line(b"", too_long=True), Command("NOOP", None)]


# --- STARTTLS ----------------------------------------------------------------------------------


def test_plaintext_pipelined_after_starttls_is_discarded():
    parser = Parser(max_line=1000)
    parser.receive_data(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
    assert parser.next_event() == Command("STARTTLS", None)
    parser.discard_buffered()
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"EHLO x\r\n")
    assert events(parser) == [Command("EHLO", "x")]


# --- PROXY -------------------------------------------------------------------------------------


def test_proxy_v1_header_split_anywhere_then_the_commands():
    stream = b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 25\r\nEHLO x\r\n"
    for cut in range(len(stream) + 1):
        parser = Parser(max_line=1000)
        parser.receive_data(stream[:cut])
        header = parser.proxy_header()
        if header is NEED_DATA:
            parser.receive_data(stream[cut:])
            header = parser.proxy_header()
        else:
            parser.receive_data(stream[cut:])
        assert header == proxy.ProxyHeader(source=("192.0.2.9", 40000)), cut
        assert events(parser) == [Command("EHLO", "x")]


def test_proxy_v2_header():
    body = bytes([192, 0, 2, 7, 127, 0, 0, 1]) + struct.pack("!HH", 4000, 25)
    head = proxy.V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body))
    parser = Parser(max_line=1000)
    parser.receive_data(head + body[:5])
    assert parser.proxy_header() is NEED_DATA
    parser.receive_data(body[5:] + b"NOOP\r\n")
    assert parser.proxy_header() == proxy.ProxyHeader(source=("192.0.2.7", 4000))
    assert events(parser) == [Command("NOOP", None)]


@pytest.mark.parametrize(
    "data",
    [
        b"EHLO x\r\n",
        b"PROXX TCP4",
        b"PROXY TCP4 1.2.3.4\r\n",
        b"PROXY " + b"1" * 200,
        b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x00",
        proxy.V2_SIGNATURE + b"\x21\x11\xff\xff",
    ],
)
def test_anything_but_a_proxy_header_is_refused(data):
    parser = Parser(max_line=1000)
    parser.receive_data(data)
    with pytest.raises(proxy.ProxyHeaderError):
        parser.proxy_header()


def test_proxy_header_waits_for_a_prefix():
    for prefix in (b"", b"PRO", b"\r\n\r\n\x00"):
        parser = Parser(max_line=1000)
        parser.receive_data(prefix)
        assert parser.proxy_header() is NEED_DATA


# --- The state table -----------------------------------------------------------------------------


def test_state_table_refusals():
    assert refusal(State.CONNECTED, "MAIL", auth_required=False) == replies.S503_NEED_HELO
    assert refusal(State.CONNECTED, "MAIL", auth_required=True) == replies.S503_NEED_HELO
    assert refusal(State.GREETED, "MAIL", auth_required=True) == replies.S530_AUTH_REQUIRED
    assert refusal(State.GREETED, "MAIL", auth_required=False) is None
    assert refusal(State.GREETED, "RCPT", auth_required=False) == replies.S503_NEED_MAIL
    assert refusal(State.GREETED, "RCPT", auth_required=True) == replies.S530_AUTH_REQUIRED
    assert refusal(State.MAIL, "MAIL", auth_required=False) == replies.S503_NESTED_MAIL
    assert refusal(State.MAIL, "DATA", auth_required=False) == replies.S554_NO_VALID_RECIPIENTS
    assert refusal(State.MAIL, "BDAT", auth_required=False) == replies.S554_NO_VALID_RECIPIENTS
    assert refusal(State.RCPT, "DATA", auth_required=False) is None
    assert refusal(State.RCPT, "RCPT", auth_required=False) is None
    assert refusal(State.BDAT, "DATA", auth_required=False) == replies.S503_DATA_AFTER_BDAT
    assert refusal(State.BDAT, "BDAT", auth_required=False) is None
    assert refusal(State.RCPT, "AUTH", auth_required=False) == replies.S503_AUTH_IN_TRANSACTION
    for state in State:
        for verb in ("EHLO", "HELO", "RSET", "NOOP", "QUIT", "STARTTLS", "VRFY", "HELP"):
            assert refusal(state, verb, auth_required=True) is None


def test_state_transitions():
    assert after(State.CONNECTED, "EHLO") is State.GREETED
    assert after(State.CONNECTED, "RSET") is State.CONNECTED
    assert after(State.RCPT, "RSET") is State.GREETED
    assert after(State.GREETED, "MAIL") is State.MAIL
    assert after(State.MAIL, "RCPT") is State.RCPT
    assert after(State.RCPT, "BDAT") is State.BDAT
    assert after(State.BDAT, "BDAT LAST") is State.GREETED
    assert after(State.RCPT, "DATA") is State.GREETED
    assert after(State.RCPT, "STARTTLS") is State.CONNECTED
    assert after(State.RCPT, "NOOP") is State.RCPT
    assert after(State.BDAT, "RCPT") is State.BDAT  # DATA stays refused after a chunk
    assert after(State.BDAT, "BDAT") is State.BDAT

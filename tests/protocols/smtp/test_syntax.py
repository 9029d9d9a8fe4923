"""The SMTP syntax module on its own: paths, parameters, content checks (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.smtp import replies, syntax
from protocols.smtp.syntax import SyntaxProblem


@pytest.mark.parametrize(
    "arg,expected",
    [
        ("<a@example.org>", ("a@example.org", "")),
        ("<a@example.org> SIZE=10 BODY=8BITMIME", ("a@example.org", "SIZE=10 BODY=8BITMIME")),
        (" <a@example.org>", ("a@example.org", "")),
        ("a@example.org SIZE=1", ("a@example.org", "SIZE=1")),
        ("<>", ("", "")),
        ("<> SIZE=5", ("", "SIZE=5")),
        ("<@one.example,@two.example:a@example.org>", ("a@example.org", "")),
        ('<"a b>c"@example.org>', ('"a b>c"@example.org', "")),
        ('<"a\\"b"@example.org>', ('"a\\"b"@example.org', "")),
        ("<jörg@bücher.example>", ("jörg@bücher.example", "")),
        ("<a@[192.0.2.1]>", ("a@[192.0.2.1]", "")),
    ],
)
def test_split_path(arg, expected):
    assert syntax.split_path(arg) == expected


@pytest.mark.parametrize(
    "arg",
    [
        "<a@example.org",
        "<a@example.org>x",
        "<a>",
        "<@example.org>",
        "<a@>",
        "<a..b@example.org>",
        "<.a@example.org>",
        "<a@b@example.org>",
        "<a@-bad-.example>",
        "<a b@example.org>",
        "<" + "x" * 65 + "@example.org>",
        "<SRS0=" + "x" * 251 + "@example.org>",  # 256 octets: past even an SRS address's cap
        "<\udcff@example.org>",
        "",
    ],
)
def test_split_path_refuses(arg):
    with pytest.raises(SyntaxProblem) as info:
        syntax.split_path(arg)
    assert info.value.reply.code == 501


def test_an_srs_local_part_may_pass_64_octets():
    """RFC 5321 4.5.3.1: our SRS addresses hold a whole address (mailboxes.srs)."""
    path = "SRS0=HHHH=TT=mailing.example.net=" + "x" * 60 + "@example.org"
    assert syntax.split_path(f"<{path}>") == (path, "")


def test_mail_params():
    params = syntax.parse_mail_params(
        "SIZE=100 body=8bitmime SMTPUTF8 RET=hdrs ENVID=a+2Bb AUTH=<>", max_size=1000
    )
    assert (params.size, params.body, params.smtputf8, params.ret, params.envid) == (
        100,
        "8BITMIME",
        True,
        "HDRS",
        "a+b",
    )
    for text, reply in [
        ("SIZE=1001", replies.S552_SIZE_EXCEEDED),
        ("SIZE=-1", replies.S501_SIZE),
        ("SIZE", replies.S501_SIZE),
        ("BODY=BINARYMIME", replies.S501_BODY),
        ("RET=NONE", replies.S501_RET),
        ("ENVID=a+zz", replies.S501_ENVID),
        ("ENVID=" + "x" * 101, replies.S501_ENVID),
        ("FOO=BAR", replies.S555_PARAMETER.format("FOO")),
        ("SIZE=1 SIZE=2", replies.S501_SYNTAX.format("duplicate parameter SIZE")),
        ("=x", replies.S501_SYNTAX.format("bad parameter =x")),
    ]:
        with pytest.raises(SyntaxProblem) as info:
            syntax.parse_mail_params(text, max_size=1000)
        assert info.value.reply == reply, text


def test_rcpt_params():
    params = syntax.parse_rcpt_params("NOTIFY=success,delay ORCPT=rfc822;a+2Bb@example.org")
    assert (params.notify, params.orcpt) == ("SUCCESS,DELAY", "rfc822;a+b@example.org")
    assert syntax.parse_rcpt_params("NOTIFY=NEVER").notify == "NEVER"
    for text in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SUCCESS,SUCCESS", "NOTIFY=MAYBE"):
        with pytest.raises(SyntaxProblem) as info:
            syntax.parse_rcpt_params(text)
        assert info.value.reply == replies.S501_NOTIFY, text
    for text in ("ORCPT=rfc822", "ORCPT=;a@b", "ORCPT=rfc822;"):
        with pytest.raises(SyntaxProblem) as info:
            syntax.parse_rcpt_params(text)
        assert info.value.reply == replies.S501_ORCPT, text


@pytest.mark.parametrize(
    "data,bare",
    [
        (b"a\r\nb\r\n", False),
        (b"", False),
        (b"a\nb\r\n", True),
        (b"a\rb\r\n", True),
        (b"a\r\r\n", True),
        (b"a\n\r\n", True),
        (b"a\r", True),
        (b"\r\r\n\n", True),  # taking out the CRLF leaves a CRLF: still bare
        (b"\n\r", True),
    ],
)
def test_bare_line_endings(data, bare):
    assert syntax.has_bare_line_ending(data) is bare


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"."]), max_size=12))
def test_bare_line_endings_are_cr_or_lf_not_in_a_crlf(pieces):
    data = b"".join(pieces)
    crlf = data.count(b"\r\n")
    counted = data.count(b"\n") != crlf or data.count(b"\r") != crlf
    assert syntax.has_bare_line_ending(data) is counted


def test_check_content():
    ok = syntax.check_content(b"..a\r\n.\r\nb\r\n", bare_line_endings="refuse", dot_stuffed=True)
    assert ok.reply is None and ok.content == b".a\r\n\r\nb\r\n"
    assert (
        syntax.check_content(b"a\nb", bare_line_endings="refuse", dot_stuffed=True).reply
        == replies.S550_BARE_LINE_ENDING
    )
    fixed = syntax.check_content(b"a\nb\rc\r\n", bare_line_endings="normalize", dot_stuffed=False)
    assert fixed.content == b"a\r\nb\r\nc\r\n"
    long_line = b"x" * 999 + b"\r\n"
    assert syntax.check_content(
        long_line, bare_line_endings="refuse", dot_stuffed=False
    ).reply == replies.S552_DATA_LINE_TOO_LONG.format(998)
    # A dot-stuffed line of 998 octets is 999 on the wire and still fits.
    stuffed = b"." + b"." + b"x" * 997 + b"\r\n"
    assert syntax.check_content(stuffed, bare_line_endings="refuse", dot_stuffed=True).reply is None


def test_every_reply_constant_is_well_formed():
    import re

    for name in dir(replies):
        reply = getattr(replies, name)
        if not isinstance(reply, replies.Reply):
            continue
        assert name.startswith(f"S{reply.code}_"), name
        if reply.status:
            assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", reply.status), name
            assert reply.status[0] == str(reply.code)[0], name
        else:
            # RFC 2034 3: only the greeting, HELO/EHLO and 3xx replies go without.
            assert reply.code in {220, 250, 334, 354}, name

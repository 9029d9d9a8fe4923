"""The sans-IO parser on bytes: split reads, every literal form, limits, malformed input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from protocols.imap import parser as p

LIMITS = {"max_line": 8192, "max_literal": 1000}


def parse_all(data: bytes, **kwargs) -> list:
    """Feed everything, collect commands and errors; continuations are noted, not answered."""
    parser = p.Parser(**{**LIMITS, **kwargs})
    parser.feed(data)
    out = []
    while True:
        item = parser.next_command()
        if item is p.NEED_DATA:
            return out
        if item is p.NEED_CONTINUATION:
            out.append(item)
            continue
        out.append(item)


def one(data: bytes, **kwargs):
    items = [i for i in parse_all(data, **kwargs) if i is not p.NEED_CONTINUATION]
    assert len(items) == 1, items
    return items[0]


def byte_by_byte(data: bytes) -> list:
    parser = p.Parser(**LIMITS)
    out = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        while True:
            item = parser.next_command()
            if item is p.NEED_DATA:
                break
            out.append(item)
    return out


def test_simple_commands():
    assert one(b"a1 NOOP\r\n") == p.Simple("a1", "NOOP")
    assert one(b"a2 capability\r\n") == p.Simple("a2", "CAPABILITY")
    assert one(b"x LOGOUT\n") == p.Simple("x", "LOGOUT")  # bare LF tolerated


def test_login_atoms_quoted_and_escapes():
    cmd = one(b'a LOGIN alice@example.org "pa\\"ss\\\\word"\r\n')
    assert cmd == p.Login("a", "LOGIN", "alice@example.org", 'pa"ss\\word')


def test_synchronizing_literal_asks_for_continuation():
    parser = p.Parser(**LIMITS)
    parser.feed(b"a LOGIN {5}\r\n")
    assert parser.next_command() is p.NEED_CONTINUATION
    assert parser.next_command() is p.NEED_DATA
    parser.feed(b"alice {6}\r\n")
    assert parser.next_command() is p.NEED_CONTINUATION
    parser.feed(b"secret\r\n")
    assert parser.next_command() == p.Login("a", "LOGIN", "alice", "secret")


def test_non_synchronizing_literal_needs_no_continuation():
    items = parse_all(b"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n")
    assert items == [p.Login("a", "LOGIN", "alice", "secret")]


def test_literal8_and_zero_length_literal():
    cmd = one(b"a APPEND INBOX ~{3}\r\nx\x00y\r\n")
    assert cmd.messages[0].data == b"x\x00y"
    cmd = one(b"a LOGIN {0}\r\n {1}\r\nx\r\n")
    assert cmd == p.Login("a", "LOGIN", "", "x")


@pytest.mark.parametrize(
    "data",
    [
        b"a1 LOGIN {5}\r\nalice secret\r\n",
        b'a2 APPEND Drafts (\\Seen $Work) " 5-Mar-2024 10:00:00 +0100" {12+}\r\nHello\r\nWorld\r\n',
        b'a3 UID FETCH 1:*,7 (FLAGS BODY.PEEK[HEADER.FIELDS (From "To")]<0.100>) (CHANGEDSINCE 5)\r\n',
        b'a4 SEARCH CHARSET UTF-8 OR (FROM {3}\r\nbob SUBJECT "x y") UNSEEN\r\n',
    ],
)
def test_split_at_every_byte_gives_the_same_command(data):
    whole = [i for i in parse_all(data) if i is not p.NEED_CONTINUATION]
    split = [i for i in byte_by_byte(data) if i is not p.NEED_CONTINUATION]
    assert whole == split
    assert len(whole) == 1 and not isinstance(whole[0], p.ParseError), whole


def test_split_literal_continuation_only_once():
    items = byte_by_byte(b"a1 LOGIN {5}\r\nalice secret\r\n")
    assert items.count(p.NEED_CONTINUATION) == 1


def test_pipelined_commands():
    items = parse_all(b"a NOOP\r\nb CHECK\r\nc LOGOUT\r\n")
    assert [i.tag for i in items] == ["a", "b", "c"]


def test_append_flags_date_literal():
    cmd = one(b'a APPEND "My Folder" (\\Seen \\Draft) "05-Mar-2024 10:00:00 -0230" {2+}\r\nhi\r\n')
    assert cmd.mailbox == "My Folder"
    message = cmd.messages[0]
    assert message.flags == ("\\Seen", "\\Draft")
    assert message.date == datetime(
        2024, 3, 5, 10, 0, tzinfo=timezone(-timedelta(hours=2, minutes=30))
    )
    assert message.data == b"hi"


def test_oversized_synchronizing_literal_is_refused_with_no_toobig_and_session_continues():
    items = parse_all(b"a APPEND INBOX {5000}\r\nb NOOP\r\n")
    assert items[0] == p.ParseError(
        "a", "Literal too large", code="TOOBIG", status="NO", command="APPEND"
    )
    assert items[1] == p.Simple("b", "NOOP")


def test_oversized_non_synchronizing_literal_is_fatal():
    error = parse_all(b"a APPEND INBOX {5000+}\r\n")[0]
    assert error.fatal and error.status == "BAD" and error.code == "TOOBIG"


def test_line_too_long_is_bad_and_next_command_parses():
    parser = p.Parser(max_line=8192, max_literal=1000)
    parser.feed(b"a1 NOOP " + b"x" * 9000)
    assert parser.next_command() is p.NEED_DATA
    parser.feed(b"y" * 9000)
    assert parser.next_command() is p.NEED_DATA
    parser.feed(b"\r\na2 NOOP\r\n")
    error = parser.next_command()
    assert isinstance(error, p.ParseError) and error.tag == "a1" and error.status == "BAD"
    assert parser.next_command() == p.Simple("a2", "NOOP")


@pytest.mark.parametrize(
    "line,tag",
    [
        (b"a1 FROB\r\n", "a1"),
        (b"a2 LOGIN\r\n", "a2"),
        (b"a3 NOOP extra\r\n", "a3"),
        (b'a4 LOGIN "unterminated\r\n', "a4"),
        (b"a5 FETCH 0 FLAGS\r\n", "a5"),
        (b"a6 FETCH 1:x FLAGS\r\n", "a6"),
        (b"a7 FETCH 1 (FLAGS\r\n", "a7"),
        (b"a8 FETCH 1 BODY.PEEK\r\n", "a8"),
        (b"a9 STORE 1 FLAGS.LOUD (\\Seen)\r\n", "a9"),
        (b"b2 UID FROB 1\r\n", "b2"),
        (b"+ NOOP\r\n", "*"),
        (b"\r\n", "*"),
        (b'b3 LOGIN "a\\x" b\r\n', "b3"),
        (b"b4 STATUS INBOX (BOGUS)\r\n", "b4"),
        (b"b5 UID FETCH 1 FLAGS (VANISHED)\r\n", "b5"),
    ],
)
def test_malformed_gets_bad_and_next_command_parses(line, tag):
    items = parse_all(line + b"z NOOP\r\n")
    assert isinstance(items[0], p.ParseError), items
    assert items[0].tag == tag and items[0].status == "BAD"
    assert items[1] == p.Simple("z", "NOOP")


def test_invalid_mailbox_name_is_refused_with_no_and_patterns_stay_raw():
    items = parse_all(b'b1 SELECT &Jjo\r\nb2 LIST "" &Jjo%\r\n')
    assert items[0] == p.ParseError(
        "b1", "Mailbox name is not valid modified UTF-7", "CANNOT", "NO", command="SELECT"
    )
    assert items[1].patterns == ("&Jjo%",)


def test_sequence_sets():
    assert p.parse_sequence_set("1:3,5,*") == p.SequenceSet(((1, 3), (5, 5), (p.STAR, p.STAR)))
    assert p.parse_sequence_set("$") == p.SequenceSet(saved=True)
    assert p.parse_sequence_set("4:2").resolve(10) == [(2, 4)]
    assert p.parse_sequence_set("5:*").resolve(3) == [(3, 5)]
    for bad in ("", "0", "1,", "1::2", "a", "01", "4294967296"):
        with pytest.raises(p.ParseFailure):
            p.parse_sequence_set(bad)


def test_fetch_items_macros_sections_partial():
    cmd = one(b"a FETCH 1:* ALL\r\n")
    assert [i.name for i in cmd.items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    cmd = one(
        b"a UID FETCH 2 (BODY[] BODY.PEEK[1.2.MIME] BINARY[1]<10.20> BINARY.SIZE[2] RFC822.HEADER)\r\n"
    )
    assert cmd.uid and cmd.sequence == p.SequenceSet(((2, 2),))
    assert cmd.items == (
        p.FetchAtt("BODY", ""),
        p.FetchAtt("BODY.PEEK", "1.2.MIME"),
        p.FetchAtt("BINARY", "1", (10, 20)),
        p.FetchAtt("BINARY.SIZE", "2"),
        p.FetchAtt("RFC822.HEADER"),
    )
    cmd = one(b'a FETCH 1 BODY[HEADER.FIELDS (Subject "X-]")]\r\n')
    assert cmd.items == (p.FetchAtt("BODY", 'HEADER.FIELDS (Subject "X-]")'),)
    cmd = one(b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n")
    assert cmd.changedsince == 12345 and cmd.vanished


def test_store_forms():
    cmd = one(b"a STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n")
    assert (cmd.mode, cmd.silent, cmd.flags) == ("add", True, ("\\Deleted",))
    cmd = one(b"a UID STORE 5 (UNCHANGEDSINCE 7) -FLAGS \\Seen $Junk\r\n")
    assert (cmd.uid, cmd.mode, cmd.flags, cmd.unchangedsince) == (
        True,
        "remove",
        ("\\Seen", "$Junk"),
        7,
    )
    cmd = one(b"a STORE 1 FLAGS ()\r\n")
    assert (cmd.mode, cmd.flags) == ("replace", ())


def test_search_tokens_for_search_module():
    cmd = one(
        b'a UID SEARCH RETURN (MIN COUNT) CHARSET utf-8 OR (FROM "bob" SINCE 1-Feb-2024) 1:5,* SUBJECT {4}\r\ncaf\xc3\r\n'
    )
    assert cmd.uid and cmd.returns == ("MIN", "COUNT") and cmd.charset == "UTF-8"
    assert cmd.keys == (
        "OR",
        ["FROM", b"bob", "SINCE", "1-Feb-2024"],
        "1:5,*",
        "SUBJECT",
        b"caf\xc3",
    )
    plain = one(b"a SEARCH ALL\r\n")
    assert plain.returns is None and plain.keys == ("ALL",)


def test_mailbox_names_modified_utf7_and_utf8():
    assert one(b"a SELECT Entw&APw-rfe\r\n").mailbox == "Entwürfe"
    assert one(b"a SELECT inbox\r\n").mailbox == "INBOX"
    assert one('a CREATE "Entwürfe"\r\n'.encode(), utf8=True).mailbox == "Entwürfe"
    assert one(b'a RENAME "a&-b" c\r\n') == p.Rename("a", "RENAME", "a&b", "c")


def test_select_qresync_params():
    cmd = one(
        b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:3 1:3)))\r\n"
    )
    assert cmd.qresync.uidvalidity == 67890007 and cmd.qresync.modseq == 20050715194045000
    assert cmd.qresync.known_uids.ranges[0] == (41, 41)
    assert cmd.qresync.seq_match is not None
    assert one(b"a EXAMINE INBOX (CONDSTORE)\r\n").condstore


def test_list_extended():
    cmd = one(
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "%") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n'
    )
    assert cmd.selection == {"SUBSCRIBED", "RECURSIVEMATCH"}
    assert cmd.patterns == ("INBOX", "%")
    assert cmd.returns.children and cmd.returns.status == ("MESSAGES", "UNSEEN")
    assert one(b'a LIST "" *\r\n').patterns == ("*",)
    assert one(b'a LSUB "" %/x*\r\n').patterns == ("%/x*",)


def test_authenticate_id_enable():
    assert one(b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n").initial == "AGFsaWNlAHNlY3JldA=="
    assert one(b"a AUTHENTICATE plain\r\n").initial is None
    assert one(b'a ID ("name" "imaplib" "version" NIL)\r\n').params == (
        ("name", "imaplib"),
        ("version", None),
    )
    assert one(b"a ID NIL\r\n").params is None
    assert one(b"a ENABLE condstore UTF8=ACCEPT\r\n").capabilities == ("CONDSTORE", "UTF8=ACCEPT")


def test_next_line_for_idle_done():
    parser = p.Parser(**LIMITS)
    parser.feed(b"DO")
    assert parser.next_line() is None
    parser.feed(b"NE\r\na NOOP\r\n")
    assert parser.next_line() == b"DONE"
    assert parser.next_command() == p.Simple("a", "NOOP")

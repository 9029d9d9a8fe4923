"""protocols/imap/sort.py without a socket: RFC 5256 2.1 base subjects, i;ascii-casemap,
the cached address text, the threading steps, ESORT's sets and PARTIAL; SORT/THREAD parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocols.imap import parser as p
from protocols.imap import sort


@pytest.mark.parametrize(
    "subject, base, reply",
    [
        ("Hello", "Hello", False),
        ("Re: Hello", "Hello", True),
        ("RE: re:Re : Hello", "Hello", True),  # "re" *WSP ":"
        ("Fwd: Hello", "Hello", True),
        ("Fw: Hello", "Hello", True),
        ("Hello (fwd)", "Hello", True),
        ("Hello (FWD) (fwd)  ", "Hello", True),
        ("[fwd: Hello]", "Hello", True),
        ("[Fwd: [Fwd: Hello]]", "Hello", True),
        ("[list] Re: Hello", "Hello", True),
        ("Re: [list] Hello", "Hello", True),  # (4): a leading blob goes
        ("Re[2]: Hello", "Hello", True),  # subj-refwd's own blob
        ("[a][b]Re: Hello", "Hello", True),
        ("[blob]", "[blob]", False),  # (4): not when nothing would be left
        ("Re: [blob]", "[blob]", True),
        ("Re:", "", True),
        ("Rex: Hello", "Rex: Hello", False),
        ("  spaced out ", "spaced out", False),
        ("Re: Caf\u00e9", "Caf\u00e9", True),
    ],
)
def test_base_subject(subject, base, reply):
    assert sort.base_subject(subject) == (base, reply)


def test_ascii_casemap_folds_only_ascii():
    assert sort.casemap("abc\u00e9Z") == "ABC\u00e9Z"
    # compared as UTF-8 octets: "\u00e9" (C3 A9) after every ASCII letter
    assert sorted(["\u00e9", "Z", "a"], key=sort.casemap) == ["a", "Z", "\u00e9"]


@pytest.mark.parametrize(
    "display, first",
    [
        ("", ("", "")),
        ("Alice <alice@example.org>, bob@example.org", ("Alice", "alice@example.org")),
        ("Doe, John <john@example.com>", ("Doe, John", "john@example.com")),
        ("bob@example.org, Alice <alice@example.org>", ("", "bob@example.org")),
        ("undisclosed-recipients:", ("", "undisclosed-recipients")),
        ("dave", ("", "dave")),
    ],
)
def test_first_address_of_cached_text(display, first):
    assert sort.first_address(display) == first


def test_group_beside_addresses_is_read_from_the_header():
    assert sort.display_ambiguous("zz@example.org, a:")
    assert not sort.display_ambiguous("a:")
    raw = b"To: a: x@example.org;, zz@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    assert sort.header_first_address(raw, "To") == ("", "a")
    raw = b"To: =?utf-8?q?Zo=C3=A9?= <z@example.org>\r\n\r\n"
    assert sort.header_first_address(raw, "To") == ("Zo\u00e9", "z@example.org")


def test_criteria():
    assert sort.parse_criteria(["reverse", "DATE", "SUBJECT"]) == (
        sort.SortKey("DATE", True),
        sort.SortKey("SUBJECT"),
    )
    for bad in ([], ["REVERSE"], ["REVERSE", "REVERSE", "DATE"], ["COLOUR"]):
        with pytest.raises(sort.SortSyntaxError):
            sort.parse_criteria(bad)


T0 = datetime(2024, 1, 1, tzinfo=UTC)


def row(uid, minutes, subject, message_id="", in_reply_to="", references=""):
    when = (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")  # as the rows give it
    return (uid, when, when, subject, message_id, in_reply_to, references)


def test_references_links_prunes_and_merges():
    rows = [
        row(1, 5, "Topic", "<a>"),
        row(2, 6, "Re: Topic", "<b>", references="<a>"),
        row(3, 1, "Other", "<c>", references="<gone1> <gone2>"),  # dummy chain: pruned
        row(4, 2, "Re: Other", "<d>", references="<x>"),  # siblings under dummy <x>
        row(5, 3, "Re: Other", "<e>", references="<x>"),
        row(6, 4, "Loop", "<f>", references="<g>"),
        row(7, 9, "Re: Loop", "<g>", references="<f>"),  # <g> is 6's parent already
        row(8, 0, "Topic", "<a>"),  # a duplicate Message-ID: a thread of its own
    ]
    roots = sort.thread_references(rows)
    # "Other" (3) and the dummy holding 4 and 5 merge by subject under a new dummy;
    # "Topic" 8 is not a reply: it and the thread of 1 share a new dummy too
    # 7 keeps 6 as its child: its own reference to <f> would close a loop (RFC 5256 (1)(C))
    assert sort.thread_text(roots) == "((8)(1 2))((3)(4)(5))(7 6)"


def test_references_message_already_under_its_parent_keeps_date_order():
    # 5 (<b>) was linked under 1 by 2's References before it arrived, and 3 and 4 were
    # placed after it since: (1)(C) makes 1 its parent again, and the siblings still come
    # by sent date (5 at minute 2 between 3 and 4), not in the order they were linked
    rows = [
        row(1, 0, "A", "<a>"),
        row(2, 4, "Re: A", "<c>", references="<a> <b>"),
        row(3, 1, "Re: A", "<d>", references="<a> <x>"),
        row(4, 3, "Re: A", "<e>", references="<a>"),
        row(5, 2, "Re: A", "<b>", references="<a>"),
        row(6, 5, "Re: A", "<f>", references="<a> <b>"),
    ]
    assert sort.thread_text(sort.thread_references(rows)) == "(1 (3)(5 (2)(6))(4))"


def test_orderedsubject():
    rows = [
        row(1, 3, "b"),
        row(2, 1, "Re: b"),
        row(3, 2, "a"),
        row(4, 0, "A"),
    ]
    assert sort.thread_text(sort.thread_orderedsubject(rows)) == "(4 3)(2 1)"
    assert sort.thread_text(sort.thread_orderedsubject(rows), {1: 10, 2: 20, 3: 30, 4: 40}) == (
        "(40 30)(20 10)"
    )


def test_collector_paused_nests_and_collects_when_overlapping_pauses_last(monkeypatch):
    import gc

    assert gc.isenabled()
    with sort.collector_paused():
        with sort.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # another pause is still running
    assert gc.isenabled()
    collected = []
    monkeypatch.setattr(gc, "collect", lambda *args: collected.append(args))
    monkeypatch.setattr(sort, "PAUSE_LIMIT", 0.0)
    with sort.collector_paused():
        with sort.collector_paused():
            pass
        assert collected == [()]  # off too long with the outer pause still running
    assert gc.isenabled()


def test_ordered_sets_and_partial():
    assert sort.ordered_set_text([5, 3, 4, 2, 1]) == "5,3:4,2,1"
    assert sort.partial_slice([9, 8, 7, 6], 2, 3) == [8, 7]
    assert sort.partial_slice([9, 8, 7, 6], -1, -2) == [7, 6]
    assert sort.partial_slice([9, 8, 7, 6], 3, 10) == [7, 6]


def test_parse_sort_and_thread():
    parsed = p.parse_command([b"a UID SORT RETURN (MIN PARTIAL 4:2) (REVERSE DATE) utf-8 ALL"])
    assert parsed == p.Sort(
        "a", "SORT", True, ("REVERSE", "DATE"), "UTF-8", ("ALL",), ("MIN",), (2, 4)
    )
    parsed = p.parse_command([b"b THREAD references US-ASCII 1:* UNSEEN"])
    assert parsed == p.Thread("b", "THREAD", False, "REFERENCES", "US-ASCII", ("1:*", "UNSEEN"))
    for bad in (
        b"c SORT (DATE) US-ASCII",
        b"c SORT RETURN (PARTIAL 1) (DATE) US-ASCII ALL",
        b"c SORT RETURN (PARTIAL -1:2) (DATE) US-ASCII ALL",
        b"c SORT RETURN (SAVE) (DATE) US-ASCII ALL",
        b"c THREAD REFERENCES",
    ):
        assert isinstance(p.parse_command([bad]), p.ParseError), bad

"""Hostile IMAP input from a client (issue 14): nothing a user or a stranger sends may stall
the process or hold memory without bound, and the session stays usable after a refusal."""

from __future__ import annotations

import time

import pytest

from protocols.imap import responses as r

pytestmark = pytest.mark.django_db(transaction=True)


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def timed(conn, tag: str, text: str | bytes) -> tuple[list[bytes], float]:
    start = time.monotonic()
    lines = conn.cmd(tag, text)
    return lines, time.monotonic() - start


# --- LIST patterns (RFC 9051 6.3.9) ------------------------------------------------------


def test_list_pattern_of_wildcard_pairs_answers_at_once(client):
    c = client()
    folder = "x" * 24
    [created] = c.cmd("a1", f"CREATE {folder}")
    assert created.startswith(b"a1 OK ") and created.endswith(b"Completed")  # [MAILBOXID ...]
    # Six "%*" pairs before a character no name has: about 7 s in a backtracking regex; the
    # bound leaves room for a loaded machine.
    lines, elapsed = timed(c, "a2", 'LIST "" "' + "%*" * 6 + '!"')
    assert lines == [ok("a2")]
    assert elapsed < 1.0
    # A 200-character pattern, and LSUB with the same (its matcher is the same).
    lines, elapsed = timed(c, "a3", 'LIST "" "' + "%*" * 100 + '!"')
    assert lines == [ok("a3")]
    assert elapsed < 1.0
    lines, elapsed = timed(c, "a4", 'LSUB "" "' + "*%" * 100 + '!"')
    assert lines == [ok("a4")]
    assert elapsed < 1.0
    # The same kind of pattern that does match still lists the folder.
    assert c.cmd("a5", 'LIST "" "' + "%*" * 100 + 'x"') == [
        f'* LIST (\\HasNoChildren) "/" "{folder}"'.encode(),
        ok("a5"),
    ]


# --- Literals before login (MAILHOST_IMAP_MAX_LITERAL_BEFORE_AUTH) ------------------------


def test_literal_before_login_is_capped_small(client, settings):
    assert settings.MAILHOST_IMAP_MAX_LITERAL_BEFORE_AUTH == 8192
    c = client(login=False)
    # RFC 9051 7.1 / RFC 7888 4: a synchronizing literal is refused before it is sent.
    c.send("a1 LOGIN {8193}\r\n")
    assert c.line() == b"a1 NO [TOOBIG] Literal too large"
    assert c.cmd("a2", "NOOP") == [ok("a2", r.OK_NOOP)]
    # One that fits is taken (a long user name or password in a literal).
    c.send("a3 LOGIN {17}\r\n")
    assert c.line().startswith(b"+ ")
    c.send("alice@example.org {6+}\r\nsecret\r\n")
    lines = c.until("a3")
    assert lines[-1].startswith(b"a3 OK ")
    # After login, the message-sized limit applies again.
    c.send("a4 APPEND INBOX {8193}\r\n")
    assert c.line().startswith(b"+ ")
    c.send(b"X: y\r\n\r\n" + b"x" * 8185 + b"\r\n")
    assert c.until("a4")[-1].startswith(b"a4 OK ")


def test_non_synchronizing_literal_before_login_closes_the_connection(client):
    c = client(login=False)
    c.send("a1 LOGIN {50000000+}\r\n")
    assert c.line() == r.BYE_LITERAL_TOO_BIG.untagged().rstrip(b"\r\n")
    assert c.line() == b"a1 BAD [TOOBIG] Literal too large"
    with pytest.raises(ConnectionError):
        c.line()


def test_many_small_literals_before_login_are_capped_in_total(client):
    c = client(login=False)
    # Each literal fits, the command as a whole does not (it would hold them all at once).
    parts = b"a1 ID (" + b"".join(b'"k%d" {8000+}\r\n' % i + b"v" * 8000 + b" " for i in range(5))
    c.send(parts)
    assert c.line() == r.BYE_LITERAL_TOO_BIG.untagged().rstrip(b"\r\n")


# --- Nesting in SEARCH (parser and key tree) -----------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        "NOT " * 5000 + "ALL",
        "OR " * 5000 + " ".join(["ALL"] * 5001),
        "(" * 5000 + "ALL" + ")" * 5000,
        "NOT (" * 2500 + "ALL" + ")" * 2500,
        "OR (" * 2500 + "ALL" + ") ALL" * 2500,
    ],
    ids=["not", "or", "parens", "not-parens", "or-parens"],
)
def test_deeply_nested_search_keys_get_bad_at_once(client, keys):
    c = client()
    c.cmd("a0", b"APPEND INBOX {7+}\r\nX: y\r\n\r\n")
    c.cmd("a1", "SELECT INBOX")
    lines, elapsed = timed(c, "a2", "SEARCH " + keys)
    assert len(lines) == 1 and lines[0].startswith(b"a2 BAD "), lines
    assert b"nested" in lines[0]
    assert elapsed < 1.0
    assert c.cmd("a3", "NOOP") == [ok("a3", r.OK_NOOP)]
    # Nesting within the limit still searches.
    assert c.cmd("a4", "SEARCH " + "NOT " * 50 + "ALL") == [b"* SEARCH 1", ok("a4")]
    assert c.cmd("a5", "SEARCH " + "(" * 50 + "NOT DELETED" + ")" * 50) == [
        b"* SEARCH 1",
        ok("a5"),
    ]


def test_deeply_nested_fetch_and_store_lists_get_bad_at_once(client):
    c = client()
    c.cmd("a0", b"APPEND INBOX {7+}\r\nX: y\r\n\r\n")
    c.cmd("a1", "SELECT INBOX")
    for tag, command in (
        ("a2", "FETCH 1 " + "(" * 5000 + "FLAGS" + ")" * 5000),
        ("a3", "STORE 1 +FLAGS " + "(" * 5000 + "\\Seen" + ")" * 5000),
        ("a4", "ID " + "(" * 5000 + '"a" "b"' + ")" * 5000),
    ):
        lines, elapsed = timed(c, tag, command)
        assert len(lines) == 1 and lines[0].startswith(tag.encode() + b" BAD "), lines
        assert elapsed < 1.0
    assert c.cmd("a5", "FETCH 1 (FLAGS)") == [b"* 1 FETCH (FLAGS (\\Recent))", ok("a5")]


# --- STORE \Recent and keyword caps ---------------------------------------------------------


def test_store_recent_is_refused_and_the_session_goes_on(client):
    c = client()
    c.cmd("a0", b"APPEND INBOX {7+}\r\nX: y\r\n\r\n")
    c.cmd("a1", "SELECT INBOX")
    for tag, command in (
        ("a2", "STORE 1 +FLAGS (\\Recent)"),
        ("a3", "STORE 1 FLAGS (\\Seen \\recent)"),
        ("a4", "UID STORE 1:* -FLAGS.SILENT \\Recent"),
    ):
        lines = c.cmd(tag, command)
        assert lines == [
            tag.encode() + b" BAD Invalid system flag \\Recent: only the server sets it"
        ]
    assert c.cmd("a5", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))", ok("a5")]
    assert c.cmd("a6", "STORE 1 +FLAGS (\\Seen)") == [
        b"* 1 FETCH (FLAGS (\\Seen \\Recent))",
        ok("a6"),
    ]


def permanent_flags(lines: list[bytes]) -> bytes:
    return next(line for line in lines if b"PERMANENTFLAGS" in line)


def test_keywords_per_folder_are_capped(client, settings):
    settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER = 5
    c = client()
    c.cmd("a0", b"APPEND INBOX {7+}\r\nX: y\r\n\r\n")
    c.cmd("a0", b"APPEND INBOX {7+}\r\nX: z\r\n\r\n")
    assert permanent_flags(c.cmd("a1", "SELECT INBOX")).endswith(b"\\Draft \\*)] Flags permitted")
    assert c.cmd("a2", "STORE 1 +FLAGS.SILENT (k1 k2 k3)")[-1] == ok("a2")
    # Two more would make six: NO [LIMIT] (RFC 5530), and nothing is stored.
    assert c.cmd("a3", "STORE 2 +FLAGS (k4 k5 k6)") == [
        b"a3 NO [LIMIT] At most 5 keywords per mailbox"
    ]
    assert c.cmd("a4", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS (\\Recent))", ok("a4")]
    # Keywords the folder has are always fine, also on another message; up to the cap.
    assert c.cmd("a5", "STORE 2 +FLAGS (K1 k4 k5)")[-1] == ok("a5")
    assert c.cmd("a6", "STORE 2 +FLAGS (k6)") == [b"a6 NO [LIMIT] At most 5 keywords per mailbox"]
    assert c.cmd("a7", b"APPEND INBOX (k7) {7+}\r\nX: w\r\n\r\n") == [
        b"a7 NO [LIMIT] At most 5 keywords per mailbox"
    ]
    # Full: a new SELECT no longer offers \* (new keywords) in PERMANENTFLAGS.
    assert permanent_flags(c.cmd("a8", "SELECT INBOX")) == (
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)] Flags permitted"
    )
    assert c.cmd("a9", "NOOP") == [ok("a9", r.OK_NOOP)]


def test_keywords_per_message_and_their_length_are_capped(client, settings):
    assert settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_MESSAGE == 64
    assert settings.MAILHOST_IMAP_MAX_KEYWORD_LENGTH == 50
    c = client()
    c.cmd("a0", b"APPEND INBOX {7+}\r\nX: y\r\n\r\n")
    c.cmd("a1", "SELECT INBOX")
    # The 3,000-keyword STORE: refused whole, with a short answer.
    many = " ".join(f"$kw{i:05d}" for i in range(3000))
    lines = c.cmd("a2", f"STORE 1 +FLAGS ({many})")
    assert lines == [b"a2 NO [LIMIT] At most 64 keywords per message"]
    assert c.cmd("a3", "STORE 1 +FLAGS.SILENT (" + " ".join(f"a{i}" for i in range(60)) + ")")[
        -1
    ] == ok("a3")
    assert c.cmd("a4", "STORE 1 +FLAGS (" + " ".join(f"b{i}" for i in range(5)) + ")") == [
        b"a4 NO [LIMIT] At most 64 keywords per message"
    ]
    assert c.cmd("a5", "STORE 1 +FLAGS (" + "x" * 51 + ")") == [
        b"a5 NO [LIMIT] Keywords are at most 50 characters long"
    ]
    # Removing and replacing below the cap still work.
    assert c.cmd("a6", "STORE 1 -FLAGS.SILENT (a0 a1)")[-1] == ok("a6")
    assert c.cmd("a7", "STORE 1 FLAGS (" + "y" * 50 + ")")[-1] == ok("a7")

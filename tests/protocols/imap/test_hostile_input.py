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
    assert c.cmd("a1", f"CREATE {folder}") == [ok("a1")]
    # Six "%*" pairs before a character no name has: about 7 s in a backtracking regex.
    lines, elapsed = timed(c, "a2", 'LIST "" "' + "%*" * 6 + '!"')
    assert lines == [ok("a2")]
    assert elapsed < 0.5
    # A 200-character pattern, and LSUB with the same (its matcher is the same).
    lines, elapsed = timed(c, "a3", 'LIST "" "' + "%*" * 100 + '!"')
    assert lines == [ok("a3")]
    assert elapsed < 0.5
    lines, elapsed = timed(c, "a4", 'LSUB "" "' + "*%" * 100 + '!"')
    assert lines == [ok("a4")]
    assert elapsed < 0.5
    # The same kind of pattern that does match still lists the folder.
    assert c.cmd("a5", 'LIST "" "' + "%*" * 100 + 'x"') == [
        f'* LIST (\\HasNoChildren) "/" "{folder}"'.encode(),
        ok("a5"),
    ]

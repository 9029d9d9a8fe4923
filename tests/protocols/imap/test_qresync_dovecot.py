"""SELECT (QRESYNC) without known UIDs, beside a stock Dovecot (tests/support/dovecot.py): the
same sessions against both, and the resynchronization answered alike.

RFC 7162 3.2.5.2: with no known-uids the server acts as if they were 1:* and reports in FETCH
every message changed since the client's mod-sequence, the messages that arrived since then
included, and in VANISHED (EARLIER) the UIDs expunged since then. Dovecot's imaptest keeps a
client's cached view during such a SELECT and asserts out (array.c line 10) on a FETCH whose
number lies past that cache: the "qresync" stress mix of bench/imap_compliance.py. This test
is the evidence that such a FETCH is what both servers send.
"""

from __future__ import annotations

import imaplib
import re

import pytest

from tests.support import dovecot

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not dovecot.available(), reason="dovecot not installed (Debian package dovecot-imapd)"
    ),
]

MESSAGE = b"From: a@example.net\r\nSubject: resync %d\r\n\r\nbody %d\r\n"


def session(port: int, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(user, "secret")
    return client


def append(client: imaplib.IMAP4, number: int) -> None:
    typ, data = client.append("INBOX", None, None, MESSAGE % (number, number))
    assert typ == "OK", data


def resync(port: int, user: str) -> dict:
    """Five messages seen by a QRESYNC client; then, elsewhere, two arrivals, a flag change,
    an expunge of a message the client knew and of one it never saw; then the client's SELECT
    (QRESYNC (uidvalidity modseq)). Returns what that SELECT answered, MODSEQ values left out
    (each server counts its own)."""
    first = session(port, user)
    for number in range(1, 6):
        append(first, number)
    assert first._simple_command("ENABLE", "QRESYNC")[0] == "OK"
    assert first.select("INBOX")[0] == "OK"
    (modseq,) = first.untagged_responses["HIGHESTMODSEQ"]
    (uidvalidity,) = first.untagged_responses["UIDVALIDITY"]
    first.logout()

    other = session(port, user)
    append(other, 6)
    append(other, 7)
    assert other.select("INBOX")[0] == "OK"
    assert other.uid("STORE", "1", "+FLAGS", "(\\Seen)")[0] == "OK"
    assert other.uid("STORE", "3,7", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert other.expunge()[0] == "OK"
    other.logout()

    client = session(port, user)
    assert client._simple_command("ENABLE", "QRESYNC")[0] == "OK"
    tag = client._command(
        "SELECT", "INBOX", f"(QRESYNC ({uidvalidity.decode()} {modseq.decode()}))"
    )
    typ, _ = client._command_complete("SELECT", tag)
    assert typ == "OK"
    responses = client.untagged_responses
    fetches = set()
    for item in responses.get("FETCH", []):
        text = item.decode() if isinstance(item, bytes) else item[0].decode()
        number = int(text.split(" ", 1)[0])
        uid = int(re.search(r"UID (\d+)", text).group(1))
        flags = frozenset(re.search(r"FLAGS \(([^)]*)\)", text).group(1).split())
        fetches.add((number, uid, flags))
    answer = {
        "exists": int(responses["EXISTS"][-1]),
        "vanished": [v.decode() for v in responses.get("VANISHED", [])],
        "fetch": fetches,
    }
    client.logout()
    return answer


def test_select_qresync_reports_arrivals_as_dovecot_does(imap):
    with dovecot.running("alice", "secret") as reference:
        theirs = resync(reference.port, "alice")
    ours = resync(imap["ports"]["imap"], "alice@example.org")
    assert ours == theirs
    # What both said: 5 known, UID 3 expunged, 6 and 7 arrived and 7 went again: 5 now; the
    # vanished UIDs include 7, which the client never saw, from both; FETCH for the flag change on UID 1 and for the arrival UID 6, number 5, past
    # the 4 messages the client still has of its own view.
    assert ours["exists"] == 5
    assert ours["vanished"] == ["(EARLIER) 3,7"]
    assert (1, 1, frozenset({"\\Seen"})) in ours["fetch"]
    assert (5, 6, frozenset()) in ours["fetch"]

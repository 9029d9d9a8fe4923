"""SORT and THREAD beside a stock Dovecot (tests/support/dovecot.py): the same corpus
(tests/protocols/imap/sortcorpus.py) APPENDed to both with the same internal dates, the same
SORT and THREAD commands, the same answers."""

from __future__ import annotations

import imaplib

import pytest

from tests.protocols.imap import sortcorpus
from tests.support import dovecot

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not dovecot.available(), reason="dovecot not installed (Debian package dovecot-imapd)"
    ),
]

SORTS = [
    "(ARRIVAL)",
    "(REVERSE ARRIVAL)",
    "(DATE)",
    "(REVERSE DATE)",
    "(SUBJECT)",
    "(REVERSE SUBJECT)",
    "(SUBJECT DATE)",
    "(FROM)",
    "(REVERSE FROM)",
    "(TO)",
    "(CC)",
    "(REVERSE CC ARRIVAL)",
    "(SIZE)",
    "(REVERSE SIZE)",
    "(DISPLAYFROM)",
    "(DISPLAYTO)",
    "(REVERSE DISPLAYFROM SUBJECT)",
    "(FROM SUBJECT REVERSE DATE)",
]
THREADS = ["REFERENCES", "ORDEREDSUBJECT"]


def answers(port: int, user: str) -> dict[str, bytes]:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(user, "secret")
    for raw, when in sortcorpus.corpus():
        typ, data = client.append("INBOX", None, imaplib.Time2Internaldate(when), raw)
        assert typ == "OK", data
    client.select("INBOX")
    out = {}
    for criteria in SORTS:
        for search in ("ALL", "NOT SUBJECT meeting"):
            typ, data = client.sort(criteria, "US-ASCII", search)
            assert typ == "OK", (criteria, data)
            out[f"SORT {criteria} {search}"] = data[0]
            typ, data = client.uid("SORT", criteria, "US-ASCII", search)
            out[f"UID SORT {criteria} {search}"] = data[0]
    for algorithm in THREADS:
        for search in ("ALL", "1:25"):
            typ, data = client.thread(algorithm, "US-ASCII", search)
            assert typ == "OK", (algorithm, data)
            out[f"THREAD {algorithm} {search}"] = data[0]
    client.logout()
    return out


def test_sort_and_thread_as_dovecot(imap):
    with dovecot.running("alice", "secret") as reference:
        theirs = answers(reference.port, "alice")
    ours = answers(imap["ports"]["imap"], "alice@example.org")
    differ = {
        command: (ours[command], theirs[command])
        for command in theirs
        if ours[command] != theirs[command]
    }
    assert not differ, "\n".join(
        f"{c}\n  ours:   {o}\n  dovecot {t}" for c, (o, t) in differ.items()
    )
    # the corpus exercises what it is for: every message sorted, threads nested and merged
    assert len(ours["SORT (ARRIVAL) ALL"].split()) == sortcorpus.COUNT
    assert ours["SORT (DATE) ALL"] != ours["SORT (ARRIVAL) ALL"]
    assert b"((" in ours["THREAD REFERENCES ALL"] and b" (" in ours["THREAD REFERENCES ALL"]

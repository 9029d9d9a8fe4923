"""A reader's own \\Seen (PrivateSeen) in its searches is a subplan, never a join planned
from statistics (issue 19): on tables not yet ANALYZEd, PostgreSQL planned a reader's
SEARCH UNSEEN, read through a server-side cursor, as a nested loop anti join over the
reader's materialized rows, and at 100k messages it ran for minutes. The plans are read
with EXPLAIN in the cursor's form, as the search runs them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mailboxes import selectors, services
from mailboxes.models import PrivateSeen
from protocols.imap import search as s

pytestmark = pytest.mark.django_db

KEYS = ["UNSEEN", "SEEN", "UNSEEN MODSEQ 1", "NOT SEEN FROM dave", "OR SEEN BODY note"]


@pytest.fixture
def shared(make_mailbox):
    """alice's Archive of six messages, read by bob, who has seen the odd ones."""
    owner, reader = make_mailbox("alice@example.org"), make_mailbox("bob@example.org")
    archive = selectors.folder_get(owner.id, "Archive")
    for n in range(1, 7):
        services.message_append(
            folder=archive, raw=b"From: dave@example.net\r\nSubject: note %d\r\n\r\nBody.\r\n" % n
        )
    services.folder_acl_set(folder=archive, identifier="bob@example.org", rights="lrs")
    PrivateSeen.objects.bulk_create(
        PrivateSeen(folder_id=archive.id, reader_id=reader.id, uid=uid, seen=True, modseq=1)
        for uid in (1, 3, 5)
    )
    return archive, reader


def reader_search(archive, reader, text: str) -> list[int]:
    return s.search_full(
        archive.id,
        s.parse_keys(text),
        seq_uids=[1, 2, 3, 4, 5, 6],
        want_modseq="MODSEQ" in text,
        reader=reader.id,
    ).uids


@pytest.mark.parametrize(
    "text,expected",
    [
        ("UNSEEN", [2, 4, 6]),
        ("SEEN", [1, 3, 5]),
        ("UNSEEN MODSEQ 1", [2, 4, 6]),
        ("NOT SEEN FROM dave", [2, 4, 6]),
        ("OR SEEN BODY note", [1, 3, 5]),
    ],
)
def test_a_readers_seen_searches_answer_its_own_seen(shared, text, expected):
    archive, reader = shared
    assert reader_search(archive, reader, text) == expected
    first = selectors.folder_first_unseen(archive.id, 0, 7, 6, reader=reader.id)
    assert first == (2, 2)


@pytest.mark.parametrize("text", [*KEYS, "first unseen"])
def test_no_join_on_the_readers_rows(shared, text):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's planner: SQLite runs EXISTS as a subquery per row")
    archive, reader = shared
    with CaptureQueriesContext(connection) as captured:
        if text == "first unseen":
            selectors.folder_first_unseen(archive.id, 0, 7, 6, reader=reader.id)
        else:
            reader_search(archive, reader, text)
    statements = [
        q["sql"] for q in captured.captured_queries if "mailboxes_privateseen" in q["sql"]
    ]
    assert statements
    with connection.cursor() as cursor:
        for sql in statements:
            query = sql.split(" FOR ", 1)[1] if sql.startswith("DECLARE ") else sql
            # a cursor is planned for its first rows (cursor_tuple_fraction), as the search's
            cursor.execute(f"EXPLAIN DECLARE plan_check NO SCROLL CURSOR WITH HOLD FOR {query}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Anti Join" not in plan and "Semi Join" not in plan, plan

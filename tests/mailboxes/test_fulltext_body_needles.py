"""Body needles of any shape (mailboxes/fulltext.py matching): on SQLite the text parts are
searched through the words index and its vocabulary (the trigram table holds the header
fields alone since 0045), a needle of several tokens by its pieces and GLOB on the text; the
answer is always what a scan of the stored texts gives. On PostgreSQL the same assertions
hold through its words index, its vocabulary and LIKE (the body's pg_trgm index is gone since
0046)."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from mailboxes import fulltext, selectors, services
from mailboxes.models import BlobText, Message
from protocols.imap import search as s

pytestmark = pytest.mark.django_db

BODIES = [
    "hello world, and the rest",
    "say hello,world! twice: hello  world",
    "mail foo@bar.com today; foo@bar.co.uk tomorrow",
    "re: x-y meeting at 10:30 (room 2b)",
    "café au lait, crème brûlée — 50% off",
    "preworldly helloworld worldwide",
    "a.b.c ... -- ?? [x] *",
    "straße köln ünïcödé x-y-z",
]
# (needle, header text's subject): a needle only in a header field, one only in a body
SUBJECT = "subject line: quarterly foo@baz.org"
NEEDLES = [
    "hello world",  # two whole tokens
    "lo wor",  # both edges inside tokens
    "o,w",  # short edges, no usable piece
    "ello,world!",
    "foo@bar.com",
    "oo@bar.c",  # an inside token and two edge pieces
    "@bar.",
    "re: x-y",
    ": x-",  # punctuation around a short token
    "x-y",
    "10:30 (room",
    "@",  # punctuation only
    ".",
    "...",
    ", ",
    "% o",
    "[x] *",
    "au",  # short
    "é au l",  # non-ASCII inside a token
    "café au",
    "lait, cr",
    "crème brûl",
    "e brûlée — 5",
    "ße köln",
    "köln",  # one token, non-ASCII
    "ünïcödé",
    "world",
    "orld",
    "d helloworld w",
    "rldly hel",
    "quarterly foo",  # the header only
    "foo@baz",
    "tomorrow",  # the body only
    "zzz qqq",  # nowhere
    "hello world, and",
]


def _append(folder, subject: str, body: str) -> None:
    raw = (
        f"Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()
    services.message_append(folder=folder, raw=raw, flags=[])


@pytest.fixture
def body_folder(make_mailbox):
    inbox = selectors.folder_get(make_mailbox("needles@example.org"), "INBOX")
    for number, body in enumerate(BODIES):
        _append(inbox, SUBJECT if number == 0 else f"plain {number}", body)
    fulltext.index_all()
    return inbox


def _texts(folder) -> dict[int, tuple[str, str, int]]:
    """blob id -> (header, body, uid) of the folder's indexed texts."""
    uids = dict(Message.objects.filter(folder=folder).values_list("blob_id", "uid"))
    return {t.blob_id: (t.header, t.body, uids[t.blob_id]) for t in BlobText.objects.all()}


def _no_reading(*args, **kwargs):
    raise AssertionError("a message was read")


def _check(folder, needles, monkeypatch) -> None:
    """The index's blobs and IMAP SEARCH's UIDs for BODY and TEXT are a scan's."""
    texts = _texts(folder)
    seq = sorted(uid for _h, _b, uid in texts.values())
    monkeypatch.setattr(selectors, "blob_read", _no_reading)
    for needle in needles:
        folded = fulltext.fold(needle)
        in_body = {b for b, (_h, body, _u) in texts.items() if folded in body}
        in_text = {b for b, (h, body, _u) in texts.items() if folded in h or folded in body}
        assert set(fulltext.matching_ids("body", folded)) == in_body, needle
        assert sorted(fulltext.matching_ids("text", folded)) == sorted(in_text), needle
        quoted = '"' + needle.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for key, found in (("BODY", in_body), ("TEXT", in_text)):
            expected = sorted(texts[b][2] for b in found)
            for criteria in (f"{key} {quoted}", f"{key} {quoted} ALL"):  # alone, and walked
                assert s.search(folder.id, s.parse_keys(criteria), seq_uids=seq) == expected, (
                    criteria
                )


@pytest.mark.parametrize("words", [1000, 1], ids=["vocabulary", "too many words"])
def test_body_needles_of_any_shape_find_what_a_scan_finds(body_folder, monkeypatch, words):
    monkeypatch.setattr(fulltext, "WORDS_PER_NEEDLE", {"sqlite": words, "postgresql": words})
    _check(body_folder, NEEDLES, monkeypatch)


def test_text_finds_a_needle_only_in_a_header_or_only_in_a_body(body_folder):
    seq = list(range(1, len(BODIES) + 1))
    for needle, body, text in (
        ('"quarterly foo"', [], [1]),
        ("foo@baz", [], [1]),
        ('"bar.com today"', [3], [3]),
        ('"line: q"', [], [1]),
    ):
        assert s.search(body_folder.id, s.parse_keys(f"BODY {needle}"), seq_uids=seq) == body
        assert s.search(body_folder.id, s.parse_keys(f"TEXT {needle}"), seq_uids=seq) == text


def _plan(where: str, needle: str) -> tuple[str, str]:
    subquery = fulltext.matching(where, needle)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {subquery.sql}", subquery.params)
        return subquery.sql, "\n".join(row[-1] for row in cursor.fetchall())


def test_sqlite_body_needles_never_ask_the_trigram_table(body_folder):
    """SQLite: the trigram table holds the header fields alone; a body needle of several
    tokens is proposed by the words index (its inside tokens and the vocabulary's words
    holding its edge pieces) and decided by GLOB on the candidates' text; TEXT asks the
    trigram table for the header fields."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's FTS5 tables")
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [fulltext.FTS_TABLE])
        assert "fts5(header, content=" in cursor.fetchone()[0]
    for needle in ("hello world", "oo@bar.c", "re: x-y", "é au l"):
        sql, plan = _plan("body", needle)
        assert fulltext.FTS_TABLE not in sql and fulltext.WORDS_TABLE in sql, needle
        assert "t.body GLOB" in sql and "SEARCH t USING" in plan, (needle, plan)
        sql, plan = _plan("text", needle)
        assert f"{fulltext.FTS_TABLE} VIRTUAL TABLE" in plan and "t.header GLOB" in sql, plan
    sql, _plan_ = _plan("body", "köln")  # one token, non-ASCII: exact, no text read
    assert "GLOB" not in sql and fulltext.VOCABULARY_FTS in sql
    sql, plan = _plan("body", "o,w")  # no piece the index answers for: every text read
    assert fulltext.WORDS_TABLE not in sql and "SCAN t" in plan.splitlines()


def test_random_needles_find_what_a_scan_finds(make_mailbox, monkeypatch):
    """Property-style: on random texts of tokens, punctuation, white space and non-ASCII
    letters, random needles (pieces of the texts across token boundaries, and random
    strings) find exactly the texts a `needle in text` scan finds, for BODY and TEXT, with
    the vocabulary answering and with every edge piece too common for it."""
    rng = random.Random(22)
    alphabet = "abcxyz0129" * 3 + "  .,-@:'\"()é\u00dfü\u212a\U0001d400"
    inbox = selectors.folder_get(make_mailbox("random-needles@example.org"), "INBOX")
    for _ in range(40):
        body = "".join(rng.choices(alphabet, k=rng.randint(0, 80)))
        subject = "".join(rng.choices(alphabet, k=rng.randint(0, 16))).replace('"', "")
        _append(inbox, subject, body)
    fulltext.index_all()
    texts = _texts(inbox)
    needles = set()
    for header, body, _uid in texts.values():
        for text in (body, body, header):
            if text:
                start = rng.randrange(len(text))
                needles.add(text[start : start + rng.randint(1, 12)].strip())
    needles |= {"".join(rng.choices(alphabet, k=rng.randint(1, 5))).strip() for _ in range(30)}
    needles = sorted(n for n in needles if n and "\\" not in n and '"' not in n)
    assert any(len(fulltext._pieces(n)[0]) for n in needles)  # inside tokens were drawn
    for words in (1000, 1):
        monkeypatch.setattr(fulltext, "WORDS_PER_NEEDLE", {"sqlite": words, "postgresql": words})
        _check(inbox, needles, monkeypatch)


@pytest.mark.django_db(transaction=True)
def test_the_header_trigram_migration_rebuilds_the_table_and_goes_back():
    """0045 (SQLite): texts indexed before it are in the header-only trigram table after it
    (TEXT finds them by a header needle) and new texts reach it through the triggers, which
    still fill the words index; backwards, the trigram table holds the body again."""
    sqlite = connection.vendor == "sqlite"
    before = [("mailboxes", "0044_blob_text_lz4")]
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    blob_ids: list[int] = []

    def add_text(name: str, header: str, body: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO mailboxes_blob(name, size, data, created_at)"
                " VALUES (%s, 1, %s, CURRENT_TIMESTAMP)",
                [f"inline:{name}", b"\x00"],
            )
            cursor.execute("SELECT id FROM mailboxes_blob WHERE name = %s", [f"inline:{name}"])
            blob_ids.append(cursor.fetchone()[0])
            cursor.execute(
                "INSERT INTO mailboxes_blobtext(blob_id, header, body) VALUES (%s, %s, %s)",
                [blob_ids[-1], header, body],
            )
            if not sqlite:
                fulltext.words_insert(cursor, [(blob_ids[-1], header, body)])
            else:
                fulltext.vocabulary_insert(cursor, [body])
        return blob_ids[-1]

    def trigram_rows(query: str) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT rowid FROM {fulltext.FTS_TABLE} WHERE {fulltext.FTS_TABLE} MATCH %s",
                [query],
            )
            return sorted(row[0] for row in cursor.fetchall())

    try:
        older = add_text("migrate-header-older", "subject: older tidings", "old body, kept text")
        MigrationExecutor(connection).migrate(leaves)
        newer = add_text("migrate-header-newer", "subject: newer tidings", "new body, kept text")
        assert sorted(fulltext.matching_ids("text", "tidings")) == [older, newer]
        assert sorted(fulltext.matching_ids("body", "body, kept")) == [older, newer]
        assert fulltext.matching_ids("text", "er tid") == [older, newer]
        assert fulltext.matching_ids("body", "ings") == []
        if sqlite:
            assert trigram_rows('"tid" AND "ngs"') == [older, newer]
            assert trigram_rows('"kep"') == []  # the body's trigrams are not kept
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT rowid FROM {fulltext.WORDS_TABLE} WHERE"
                    f" {fulltext.WORDS_TABLE} MATCH '\"kept\"'"
                )
                assert sorted(row[0] for row in cursor.fetchall()) == [older, newer]
        MigrationExecutor(connection).migrate(before)
        if sqlite:
            assert trigram_rows('"kep"') == [older, newer]
            assert trigram_rows('"tid" AND "ngs"') == [older, newer]
    finally:
        with connection.cursor() as cursor:
            for blob_id in blob_ids:
                cursor.execute("DELETE FROM mailboxes_blobtext WHERE blob_id = %s", [blob_id])
                cursor.execute("DELETE FROM mailboxes_blob WHERE id = %s", [blob_id])
        MigrationExecutor(connection).migrate(leaves)

"""Needles that are not one word (mailboxes/fulltext.py, needle_pieces): several words, words cut
at either end, punctuation, non-ASCII letters, in the header or the body only. On PostgreSQL
the words index proposes the texts (the body has no trigram index since 0046) and LIKE decides;
on SQLite the same with GLOB (0045). Whatever the index, exactly what reading every message finds."""

# ruff: noqa: F811  (fixtures come from test_search)
from __future__ import annotations

import random

import pytest
from django.db import connection

from mailboxes import fulltext, selectors, services
from protocols.imap import search as s
from tests.protocols.imap.test_search import _one_dkim_key, run  # noqa: F401  (fixture)
from tests.protocols.imap.test_search_fulltext import (
    _no_reading,
    _scans,
    indexed_random_texts,
)

pytestmark = pytest.mark.django_db

SUBJECT_ONLY = "the quarterly figures"  # in one message's subject alone
BODIES = [
    "hello world, said the server",
    "say hello   to the world",  # the words apart: not "hello world"
    "mail foo@bar.com today; or foo@bar.org",
    "xfoo@bar.comz and foo @ bar.com",
    "café au lait and naïve approach",
    "日本語のテキスト and кириллица text",
    "a-b-c --- @@ !! 50% done_",
    "the quarter is over",
]
# (needle, messages holding it in the body)
NEEDLES = [
    ("hello world", [1]),
    ("lo wor", [1]),  # cut inside the words at both ends
    ("o world, s", [1]),
    ("world, said the", [1]),
    ("hello", [1, 2]),
    ("foo@bar.com", [3, 4]),
    ("o@bar.c", [3, 4]),
    ("@bar.", [3, 4]),
    ("foo@bar.comz", [4]),
    (" @ bar", [4]),
    ("café au", [5]),
    ("é au l", [5]),
    ("naïve", [5]),
    ("ïve app", [5]),
    ("日本語", [6]),
    ("本語の", [6]),
    ("кириллица text", [6]),
    ("ллиц", [6]),
    ("a-b-c", [7]),
    ("-b-", [7]),
    ("---", [7]),
    ("@@ !!", [7]),
    ("@@", [7]),
    ("50%", [7]),
    ("done_", [7]),
    ("_", [7]),
    ("quarterly figures", []),  # the subject's, not a body's
    ("the quarter", [8]),
    ("nowhere at all", []),
    ("a", [1, 2, 3, 4, 5, 6, 7, 8]),
]


@pytest.fixture
def pieces_folder(make_mailbox):
    mailbox = make_mailbox("pieces@example.org")
    inbox = selectors.folder_get(mailbox, "INBOX")
    for number, body in enumerate(BODIES, 1):
        subject = SUBJECT_ONLY if number == 2 else f"message {number}"
        raw = (
            f"Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
        ).encode()
        services.message_append(folder=inbox, raw=raw, flags=[])
    return inbox


def _quoted(needle: str) -> str:
    return '"' + needle.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.parametrize("words", [1000, 1], ids=["vocabulary", "too many words"])
def test_needles_of_several_words_find_what_reading_finds(pieces_folder, monkeypatch, words):
    """BODY finds the body's needles and TEXT the header's too (the subject alone holds
    "quarterly figures"), from the index as reading finds them, with the vocabulary's words
    for the pieces at the needle's ends or too many of them to ask (then the other pieces,
    or every text, decide)."""
    read = {n: run(pieces_folder, f"BODY {_quoted(n)}") for n, _ in NEEDLES}
    assert read == dict(NEEDLES)
    read_text = {n: run(pieces_folder, f"TEXT {_quoted(n)}") for n, _ in NEEDLES}
    assert read_text["quarterly figures"] == [2]
    fulltext.index_all()
    monkeypatch.setattr(fulltext, "WORDS_PER_NEEDLE", {"sqlite": words, "postgresql": words})
    monkeypatch.setattr(selectors, "blob_read", _no_reading)
    assert {n: run(pieces_folder, f"BODY {_quoted(n)}") for n, _ in NEEDLES} == read
    assert {n: run(pieces_folder, f"TEXT {_quoted(n)}") for n, _ in NEEDLES} == read_text


def test_needle_pieces_are_whole_words_inside_and_word_ends_at_the_edges():
    assert fulltext.needle_pieces("hello world") == ([], ["%hello", "world%"])
    assert fulltext.needle_pieces("foo@bar.com") == (["bar"], ["%foo", "com%"])
    assert fulltext.needle_pieces(" au lait") == (["au"], ["lait%"])
    assert fulltext.needle_pieces("日本語") == ([], ["%日本語%"])
    assert fulltext.needle_pieces("é au l") == (["au"], ["%é", "l%"])
    assert fulltext.needle_pieces("@@ !!") is None
    long = "q" * (fulltext.WORD_LONGEST + 1)
    # a run longer than a window is in no word whole, nor at a word's end
    assert fulltext.needle_pieces(f"{long} x {long}") == (["x"], [])
    assert fulltext.needle_pieces(f"x {long} y") == ([], ["%x", "y%"])


def test_postgresql_answers_pieces_from_the_words_index(pieces_folder):
    """PostgreSQL: the body has no trigram index (0046); a needle of several words is
    answered by the words index's candidates, each checked with LIKE, without a sequential
    scan of the texts; a needle without a run to look up scans them."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's words index and function (SQLite: GLOB, 0045)")
    fulltext.index_all()
    indexes = _indexes()
    assert f"{fulltext.TABLE}_header_trgm" in indexes
    assert f"{fulltext.TABLE}_body_trgm" not in indexes
    names = [fulltext.TABLE, f"{fulltext.WORDS_TABLE}_body"]
    before = _scans(names)
    assert len(fulltext.matching_ids("body", "foo@bar.com")) == 2
    after = _scans(names)
    assert after[fulltext.TABLE] == before[fulltext.TABLE]  # no sequential scan of the texts
    assert after[f"{fulltext.WORDS_TABLE}_body"] > before[f"{fulltext.WORDS_TABLE}_body"]
    assert len(fulltext.matching_ids("body", "@@ !!")) == 1
    assert _scans(names)[fulltext.TABLE] == after[fulltext.TABLE] + 1
    # a limit of the function's own
    assert len(fulltext.matching_ids("text", "a", limit=3)) == 3


# Characters of words and between them: letters, digits, non-ASCII letters (a folding that is
# not one to one among them), white space and punctuation.
ALPHABET = "abcxyz0129" * 3 + "  .,-_'@%\u00e9\u00df\u0130\u212a\u0301\U0001d400\u65e5\u20ac"


def test_any_needle_finds_what_a_scan_finds_in_random_texts(make_mailbox, monkeypatch):
    """On random texts, a needle cut anywhere from them (across words, at punctuation, of
    non-ASCII letters) finds exactly the messages whose stored text holds it, for BODY and
    TEXT, with the vocabulary's words for the pieces at its ends or too many to ask."""
    rng = random.Random(22)
    mailbox = make_mailbox("random-pieces@example.org")
    inbox, texts = indexed_random_texts(mailbox, rng, ALPHABET, 150, 30)
    needles = {"a b", "x.y", "@@", "0 %"}
    for header, body in texts.values():
        for text in (body, header):
            if len(text) > 2:
                start = rng.randrange(len(text) - 2)
                needles.add(fulltext.fold(text[start : start + rng.randint(1, 12)]) or "a")
    monkeypatch.setattr(selectors, "blob_read", _no_reading)
    uids = sorted(texts)
    for words in (1000, 2):
        monkeypatch.setattr(fulltext, "WORDS_PER_NEEDLE", {"sqlite": words, "postgresql": words})
        for needle in sorted(needles):
            in_body = [uid for uid in uids if needle in texts[uid][1]]
            in_text = [uid for uid in uids if needle in texts[uid][0] or needle in texts[uid][1]]
            body = s.search(inbox.id, s.parse_keys(f"BODY {_quoted(needle)}"), seq_uids=uids)
            assert body == in_body, (needle, words)
            text = s.search(inbox.id, s.parse_keys(f"TEXT {_quoted(needle)}"), seq_uids=uids)
            assert text == in_text, (needle, words)


@pytest.mark.django_db(transaction=True)
def test_the_migration_drops_the_body_trigrams_and_makes_non_ascii_words_again():
    """PostgreSQL, 0046: forwards, the body's trigram index goes, and the words of a text
    indexed before it with non-ASCII letters are made again (their runs whole: "café", not
    "caf"), an ASCII text's left as they were; backwards, the index is back."""
    from django.db.migrations.executor import MigrationExecutor

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's indexes (0046 changes nothing on SQLite)")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate([("mailboxes", "0045_fts_header_trigrams_sqlite")])
    try:
        assert f"{fulltext.TABLE}_body_trgm" in _indexes()
        blobs = []
        with connection.cursor() as cursor:
            for number, body in enumerate(["un café au lait", "plain ascii text"]):
                cursor.execute(
                    "INSERT INTO mailboxes_blob(name, size, data, created_at)"
                    " VALUES (%s, 1, %s, CURRENT_TIMESTAMP) RETURNING id",
                    [f"inline:migrate-pieces-{number}", b"\x00"],
                )
                (blob_id,) = cursor.fetchone()
                blobs.append(blob_id)
                cursor.execute(
                    "INSERT INTO mailboxes_blobtext(blob_id, header, body) VALUES (%s, %s, %s)",
                    [blob_id, "subject: s", body],
                )
                # the words as 0025's words_of made them: ASCII runs alone
                cursor.execute(
                    f"INSERT INTO {fulltext.WORDS_TABLE}(blob_id, header, body)"
                    " VALUES (%s, %s, %s)",
                    [blob_id, ["s", "subject"], sorted(set(re_ascii_runs(body)))],
                )
        MigrationExecutor(connection).migrate(latest)
        assert f"{fulltext.TABLE}_body_trgm" not in _indexes()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT body FROM {fulltext.WORDS_TABLE} WHERE blob_id = ANY(%s) ORDER BY blob_id",
                [blobs],
            )
            assert [row[0] for row in cursor.fetchall()] == [
                ["au", "café", "lait", "un"],
                ["ascii", "plain", "text"],
            ]
        assert fulltext.matching_ids("body", "café au") == blobs[:1]
        assert fulltext.matching_ids("body", "fé") == blobs[:1]
        executor = MigrationExecutor(connection)
        executor.migrate([("mailboxes", "0045_fts_header_trigrams_sqlite")])
        assert f"{fulltext.TABLE}_body_trgm" in _indexes()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM mailboxes_blobtext WHERE blob_id IN"
                " (SELECT id FROM mailboxes_blob WHERE name LIKE 'inline:migrate-pieces-%%')"
            )
            cursor.execute("DELETE FROM mailboxes_blob WHERE name LIKE 'inline:migrate-pieces-%%'")
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def re_ascii_runs(text: str) -> list[str]:
    import re

    return re.findall("[0-9a-z]+", text)


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [fulltext.TABLE])
        return {row[0] for row in cursor.fetchall()}


def test_header_words_do_not_crowd_a_body_needle_out_of_the_vocabulary(make_mailbox, monkeypatch):
    """PostgreSQL (0047): the vocabulary holds the text parts' words alone, so a needle inside
    many header tokens (ids, numbers) and few body words is still answered from the words
    index, not by reading every text; TEXT finds it in the headers through their trigram
    index. SQLite's vocabulary always held the text parts' tokens alone."""
    mailbox = make_mailbox("crowd@example.org")
    inbox = selectors.folder_get(mailbox, "INBOX")
    for number in range(6):
        subject = " ".join(f"qxz{number}{i}" for i in range(3))  # 18 header words with "qxz"
        body = "a qxzzy here" if number == 2 else "nothing"
        raw = f"Subject: {subject}\r\n\r\n{body}\r\n".encode()
        services.message_append(folder=inbox, raw=raw, flags=[])
    fulltext.index_all()
    monkeypatch.setattr(fulltext, "WORDS_PER_NEEDLE", {"sqlite": 5, "postgresql": 5})
    assert fulltext._words_answer("qxz")  # one word of the text parts holds it
    monkeypatch.setattr(selectors, "blob_read", _no_reading)
    assert run(inbox, "BODY qxz") == [3]
    assert run(inbox, "TEXT qxz") == [1, 2, 3, 4, 5, 6]
    assert run(inbox, "TEXT qxz01") == [1]

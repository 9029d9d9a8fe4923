"""Full-text search (mailboxes/fulltext.py): the index gives IMAP SEARCH and webmail exactly
what reading every message gives, with the index complete, partial or absent; it is used (no
message is read when all are indexed); and it follows the messages (expunge, reindex, the
indexer thread woken by a delivery). SQLite (FTS5 trigram) and PostgreSQL (pg_trgm) alike."""

# ruff: noqa: F811  (the folder fixture comes from test_search)
from __future__ import annotations

import re
import time

import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailboxes import fulltext, selectors, services
from mailboxes.models import Blob, BlobText, BlobTextPending, Message
from protocols.imap import search as s
from tests.protocols.imap.test_search import (  # noqa: F401  (fixtures)
    MESSAGES,
    _one_dkim_key,  # noqa: F401
    folder,
    run,
)

pytestmark = pytest.mark.django_db

TEXT_KEYS = [
    ("BODY numbers", [1]),
    ("BODY up", [1]),  # two characters: below the trigram, the LIKE path
    ("BODY u", [1, 2, 3]),
    ("BODY café", [2]),  # base64, UTF-8
    ("BODY GRÖSSE", [2]),  # Unicode case folding: ß is ss
    ('BODY "menü of"', [2]),  # quoted-printable, ISO-8859-1
    ("BODY köln", [3]),
    ("BODY quarterly", []),
    ('BODY "the   numbers"', [1]),  # white space runs are one space
    ('BODY "50%"', []),  # LIKE's wildcards are plain characters here
    ("BODY _", []),
    ("TEXT quarterly", [1]),
    ("TEXT numbers", [1]),
    ("TEXT x-priority", [1]),
    ("NOT BODY numbers", [2, 3, 4]),
    ("OR SEEN BODY köln", [1, 3]),
    ("OR NOT SEEN BODY numbers", [1, 2, 3, 4]),
    ("BODY café SEEN", []),
    ("BODY café UNSEEN", [2]),
]


@pytest.mark.parametrize("text,expected", TEXT_KEYS)
@pytest.mark.parametrize("index", ["none", "all", "some"])
def test_the_same_results_whatever_is_indexed(folder, text, expected, index):
    if index == "all":
        assert fulltext.index_all() == len(MESSAGES)
    elif index == "some":
        blobs = list(
            Message.objects.filter(folder=folder).order_by("uid").values_list("blob_id", flat=True)
        )
        fulltext.index_blobs(blobs[::2])
    assert run(folder, text) == expected


def test_an_indexed_folder_reads_no_message(folder, monkeypatch):
    fulltext.index_all()

    def no_reading(*args, **kwargs):
        raise AssertionError("a message was read")

    monkeypatch.setattr(selectors, "blob_read", no_reading)
    assert run(folder, "BODY café") == [2]
    assert run(folder, "NOT BODY numbers") == [2, 3, 4]
    assert run(folder, "OR SEEN BODY köln") == [1, 3]


def test_stored_text_is_what_search_matches(folder):
    fulltext.index_all()
    message = Message.objects.get(folder=folder, uid=2)
    text = BlobText.objects.get(blob_id=message.blob_id)
    row = s._Message({"blob__name": message.blob.name})
    assert (text.header, text.body) == (row.header_text(), row.body_text())
    assert "lunch at the café grösse" in text.body


def test_too_long_texts_are_searched_by_reading(folder, settings):
    settings.MAILHOST_FTS_MAX_TEXT = 1024
    fulltext.index_all()
    assert BlobTextPending.objects.filter(too_long=True).count() >= 1
    assert run(folder, "BODY numbers") == [1]
    assert run(folder, "SUBJECT needle-at-the-end") == [4]


def test_expunge_removes_the_text_and_reindex_builds_it_again(folder):
    fulltext.index_all()
    message = Message.objects.get(folder=folder, uid=1)
    Message.objects.filter(pk=message.pk).delete()
    services.blob_release([message.blob_id])
    assert not BlobText.objects.filter(blob_id=message.blob_id).exists()
    assert not BlobTextPending.objects.filter(blob_id=message.blob_id).exists()
    assert run(folder, "BODY numbers") == []
    call_command("reindex", stdout=open("/dev/null", "w"))
    assert BlobText.objects.count() == len(MESSAGES) - 1
    assert run(folder, "BODY café") == [1]  # message 2 is now number 1
    assert run(folder, "BODY lunch") == [1]


def test_postgresql_words_follow_the_texts(folder):
    """PostgreSQL: a text's words go with it (expunge, reindex), and reindex builds the words
    and the vocabulary again."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the words table and vocabulary are PostgreSQL's")

    def words() -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT blob_id FROM {fulltext.WORDS_TABLE}")
            return {row[0] for row in cursor.fetchall()}

    fulltext.index_all()
    assert words() == set(BlobText.objects.values_list("blob_id", flat=True))
    message = Message.objects.get(folder=folder, uid=1)
    Message.objects.filter(pk=message.pk).delete()
    services.blob_release([message.blob_id])
    assert message.blob_id not in words()
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {fulltext.VOCABULARY}(word) VALUES ('lunchbox')")
    call_command("reindex", stdout=open("/dev/null", "w"))
    assert words() == set(BlobText.objects.values_list("blob_id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT word FROM {fulltext.VOCABULARY} WHERE word LIKE '%%lunch%%'")
        assert [row[0] for row in cursor.fetchall()] == ["lunch"]  # rebuilt from the texts


def test_sqlite_vocabulary_follows_the_texts(folder):
    """SQLite: indexing adds a text's new words to the vocabulary; a removed text leaves its
    words there, which find nothing (the words index is the truth); reindex builds the
    vocabulary again from the texts."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's vocabulary (PostgreSQL: test_postgresql_words_follow_the_texts)")

    def vocabulary(like: str) -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT word FROM {fulltext.VOCABULARY} WHERE word LIKE %s ORDER BY word", [like]
            )
            return [row[0] for row in cursor.fetchall()]

    fulltext.index_all()
    assert vocabulary("%numb%") == ["numbers"]
    message = Message.objects.get(folder=folder, uid=1)
    Message.objects.filter(pk=message.pk).delete()
    services.blob_release([message.blob_id])
    assert vocabulary("%numb%") == ["numbers"]  # stale, and harmless:
    assert fulltext.matching_ids("body", "numbers") == []
    assert run(folder, "BODY numbers") == []
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {fulltext.VOCABULARY}(word) VALUES ('lunchbox')")
    call_command("reindex", stdout=open("/dev/null", "w"))
    assert vocabulary("%numb%") == []
    assert vocabulary("%lunch%") == ["lunch"]  # rebuilt from the texts
    assert run(folder, "BODY lunch") == [1]


def test_webmail_searches_the_whole_mailbox_through_the_index(folder, monkeypatch):
    from webmail import search as webmail_search

    fulltext.index_all()
    monkeypatch.setattr(webmail_search, "BODY_SCAN_LIMIT", 0)  # nothing read: the index alone
    found = webmail_search.search(mailbox=folder.mailbox, query="köln", where="body")
    assert [m.uid for m in found.messages] == [3]
    assert not found.body_incomplete


@pytest.mark.django_db(transaction=True)
def test_the_indexer_indexes_a_delivery_soon(make_mailbox, settings):
    settings.MAILHOST_FTS_INTERVAL = 3600  # only the delivery's event can wake it
    mailbox = make_mailbox("owner@example.org")
    indexer = fulltext.Indexer()
    indexer.start()
    try:
        time.sleep(0.3)
        services.message_deliver(
            raw=b"Subject: hi\r\n\r\nzebra crossing\r\n", recipients=["owner@example.org"]
        )
        deadline = time.monotonic() + 10
        while not BlobText.objects.filter(body__contains="zebra").exists():
            assert time.monotonic() < deadline, "not indexed"
            time.sleep(0.05)
    finally:
        indexer.stop()
        indexer.join(5)
    inbox = selectors.folder_get(mailbox, "INBOX")
    assert run(inbox, "BODY zebra") == [1]


def test_every_new_blob_is_pending_however_it_is_made(folder):
    """A database trigger, so that bulk inserts (the bench, imports) are not missed."""
    fulltext.index_all()
    assert not BlobTextPending.objects.exists()
    made = Blob.objects.bulk_create([Blob(name=Blob.INLINE_PREFIX + "x1", size=3, data=b"a\r\n")])
    stored = services.blob_store(b"Subject: s\r\n\r\nb\r\n")
    assert set(BlobTextPending.objects.values_list("blob_id", flat=True)) == {made[0].pk, stored.pk}


@pytest.mark.parametrize("text,expected", [("BODY numbers", [1]), ("TEXT köln", [3])])
@pytest.mark.parametrize("before", ["none", "some"])
def test_a_message_indexed_during_the_search_is_not_missed(
    folder, monkeypatch, text, expected, before
):
    """The indexer may commit between the search's look at what is unindexed and its query of
    the index (imaptest's search-body group once lost a message so): the search must still
    find it, from the index or from its bytes."""
    blobs = list(
        Message.objects.filter(folder=folder).order_by("uid").values_list("blob_id", flat=True)
    )
    if before == "some":
        fulltext.index_blobs(blobs[1::2])
    asking = fulltext.matching_ids

    def indexer_commits_after(where, needle, **kwargs):
        found = asking(where, needle, **kwargs)
        fulltext.index_all()  # everything left is indexed just after the index was asked
        return found

    monkeypatch.setattr(fulltext, "matching_ids", indexer_commits_after)
    assert run(folder, text) == expected


# --- The words index (SQLite: FTS5 unicode61; PostgreSQL: words_of and the vocabulary) ------

# Bodies that put a word needle everywhere a word index could get it wrong: as a word, inside
# longer words, beside punctuation and non-ASCII letters, split by white space, after letters
# that case folding changes (U+0130, the Kelvin sign), and in a header field only.
WORD_BODIES = [
    "the report is due",
    "two reports and a reporter",
    "unreported, misreport",
    "report-card; report.",
    "REPORT IN CAPITALS",
    "réport and reportß and ßreport",
    "re port and rep ort",
    "\u0130report and \u212areport and report\u212a",
    "x2024y and 2024 and abc123",
    "nothing here",
]
WORD_NEEDLES = ["report", "reports", "port", "eport", "rep", "2024", "abc123", "kreport", "ss"]


@pytest.fixture
def word_folder(make_mailbox):
    mailbox = make_mailbox("words@example.org")
    inbox = selectors.folder_get(mailbox, "INBOX")
    for number, body in enumerate(WORD_BODIES):
        subject = "report in the subject only" if number == len(WORD_BODIES) - 1 else "plain"
        raw = (
            f"Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"{body}\r\n"
        ).encode()
        services.message_append(folder=inbox, raw=raw, flags=[])
    return inbox


@pytest.mark.parametrize("words", [1000, 0], ids=["vocabulary", "too many words"])
@pytest.mark.parametrize("few", [2000, 0], ids=["rare path", "common path"])
@pytest.mark.parametrize("where", ["BODY", "TEXT"])
def test_word_needles_find_what_reading_finds(word_folder, monkeypatch, few, where, words):
    """The words index answers for a needle that is a word, the trigram index for the rest:
    together exactly what reading every message finds (the needle inside longer words, in
    the header only, after characters whose case folding is not one to one), through the
    vocabulary or, for a needle inside too many of its words, the trigram index and the word
    itself."""
    from mailboxes import search as mailbox_search

    read = {needle: run(word_folder, f"{where} {needle}") for needle in WORD_NEEDLES}
    assert read["report"] and read["2024"] and read["abc123"]  # the corpus holds them
    fulltext.index_all()
    monkeypatch.setattr(mailbox_search, "FEW_TEXT_MATCHES", few)
    monkeypatch.setattr(fulltext, "WORDS_PER_NEEDLE", {"sqlite": words, "postgresql": words})
    monkeypatch.setattr(selectors, "blob_read", _no_reading)
    assert {needle: run(word_folder, f"{where} {needle}") for needle in WORD_NEEDLES} == read
    # one key alone takes its UIDs from the index (SQLite): with another, the folder's walk
    assert {needle: run(word_folder, f"{where} {needle} ALL") for needle in WORD_NEEDLES} == read


def _no_reading(*args, **kwargs):
    raise AssertionError("a message was read")


def test_a_word_needle_reads_no_text_on_sqlite(word_folder, monkeypatch):
    """SQLite: a needle of ASCII letters and digits is answered from the vocabulary (its
    trigram table) and the words index alone, no text of mailboxes_blobtext read and no
    trigram candidate checked; TEXT checks only the header fields of the trigram index's
    other candidates. A folder's search for it alone takes its UIDs from the index (the
    folder's rows are not walked)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's FTS5 vocabulary (PostgreSQL: test_a_word_needle_reads_no_text_...)")
    fulltext.index_all()
    read = run(word_folder, "BODY report")
    for where in ("body", "text"):
        subquery = fulltext.matching(where, "report", limit=2001)
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {subquery.sql}", subquery.params)
            plan = "\n".join(row[-1] for row in cursor.fetchall())
        assert f"{fulltext.VOCABULARY_FTS} VIRTUAL TABLE" in plan, plan
        assert "GLOB" not in subquery.sql if where == "body" else "t.header GLOB" in subquery.sql
        assert ("SCAN t" in plan or "SEARCH t" in plan) == (where == "text"), plan
    assert sorted(fulltext.matching_ids("body", "report")) == sorted(
        Message.objects.filter(folder=word_folder, uid__in=read).values_list("blob_id", flat=True)
    )

    def no_walk(*args, **kwargs):
        raise AssertionError("the folder's rows were walked")

    monkeypatch.setattr(selectors, "messages_to_search", no_walk)
    assert run(word_folder, "BODY report") == read
    assert run(word_folder, "TEXT report") == read + [len(WORD_BODIES)]  # its subject


def test_a_word_needle_reads_no_text_on_postgresql(word_folder):
    """PostgreSQL: a needle of ASCII letters and digits is answered from the vocabulary and
    the words index alone (no text of mailboxes_blobtext read), through a function that
    never scans the words table (each row's words are read from TOAST; with a LIMIT the
    planner chose the scan: 2.4 s for a rare needle at 100k), and finds what reading finds."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's vocabulary (SQLite: test_a_word_needle_reads_no_text_on_sqlite)")
    fulltext.index_all()
    for where in ("body", "text"):
        subquery = fulltext.matching(where, "report", limit=2001)
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (COSTS OFF) {subquery.sql}", subquery.params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert f"Function Scan on {fulltext.WORDS_TABLE}_matching" in plan
        assert "on mailboxes_blobtext " not in plan  # no text read
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proconfig FROM pg_proc WHERE proname = %s", [f"{fulltext.WORDS_TABLE}_matching"]
        )
        # 0029: index scans off too, as the function takes a LIMIT of its own
        assert cursor.fetchall() == [(["enable_seqscan=off", "enable_indexscan=off"],)]
    read = run(word_folder, "BODY report")
    assert sorted(fulltext.matching_ids("body", "report")) == sorted(
        Message.objects.filter(folder=word_folder, uid__in=read).values_list("blob_id", flat=True)
    )


def test_a_mailbox_search_with_many_matches_walks_by_date_on_sqlite(word_folder):
    """SQLite: a whole mailbox's search with many matches (the webmail's newest first) walks
    its messages by date, each blob looked up in the matches: given the vocabulary's words,
    the planner looked every match's message up by blob, then read and sorted them all."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's plan (PostgreSQL: test_many_word_matches_are_hashed_...)")
    fulltext.index_all()
    found = Message.objects.filter(
        fulltext.matching_blobs("body", "report"), folder__mailbox_id=word_folder.mailbox_id
    ).order_by("-internal_date", "-id")
    plan = found.values_list("uid", flat=True).explain()
    assert "message_blob_folder_uid" not in plan, plan
    assert sorted(found.values_list("uid", flat=True)) == run(word_folder, "BODY report")


def test_many_word_matches_are_hashed_not_looked_up_one_by_one(word_folder):
    """PostgreSQL: a folder's search with many matches of a word needle hashes the words
    index's texts and walks the folder, whatever the planner guesses of their number: never a
    lookup of each match's message by blob, nor of each message's words by blob (each reads
    a row's words: 1 s at 100k messages). Asked with index scans preferred, as a cursor's
    fast start prefers them."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    fulltext.index_all()
    found = Message.objects.filter(
        fulltext.matching_messages("body", "report"), folder=word_folder
    ).order_by("uid")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL cursor_tuple_fraction = 0.01")
        plan = found.values_list("uid", flat=True).explain()
    assert f"{fulltext.WORDS_TABLE}_matching" in plan
    assert "mailboxes_blobtext_words_pkey" not in plan
    assert "message_blob_folder_uid" not in plan  # the blob index of messages (0027)
    assert list(found.values_list("uid", flat=True)) == run(word_folder, "BODY report")


@pytest.mark.parametrize("search", ["imap", "webmail"])
def test_a_cursor_over_many_word_matches_is_not_a_nested_loop(word_folder, monkeypatch, search):
    """PostgreSQL, tables not yet ANALYZEd: the statements a search with many matches of a
    word needle runs, planned as they run (a server-side cursor, planned for its first rows),
    never loop over the words function's rows once per message: they are hashed once, in a
    subplan. As a semi join, the cursor over a folder's messages was a nested loop, and a
    common needle at 100k messages ran for more than ten minutes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mailboxes import search as mailbox_search
    from webmail import search as webmail_search

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    fulltext.index_all()
    monkeypatch.setattr(mailbox_search, "FEW_TEXT_MATCHES", 0)  # "report" is then common
    with CaptureQueriesContext(connection) as captured:
        if search == "imap":  # with another key: BODY alone is one function (0029)
            assert run(word_folder, "BODY report ALL")
        else:
            mailbox = word_folder.mailbox
            assert webmail_search.search(mailbox=mailbox, query="report", where="body").messages
    words = f"{fulltext.WORDS_TABLE}_matching("
    statements = [  # the search's own, over the messages (not the count of the matches)
        q["sql"]
        for q in captured.captured_queries
        if words in q["sql"] and "mailboxes_message" in q["sql"]
    ]
    assert statements
    with connection.cursor() as cursor:
        for sql in statements:
            query = sql.split(" FOR ", 1)[1] if sql.startswith("DECLARE ") else sql
            cursor.execute(f"EXPLAIN DECLARE plan_check NO SCROLL CURSOR WITH HOLD FOR {query}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "hashed SubPlan" in plan, plan
            assert "Join" not in plan.split("SubPlan")[0], plan  # no join with the function


@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
@hypothesis_settings(max_examples=300, deadline=None)
def test_token_is_what_the_ascii_tokenizer_keeps(text):
    """fulltext.ascii_tokens finds the tokens FTS5's ascii tokenizer keeps of a (folded) text,
    which the vocabulary must hold every one of: checked against FTS5 itself."""
    import sqlite3

    text = fulltext.fold(text)
    database = sqlite3.connect(":memory:")
    database.execute("CREATE VIRTUAL TABLE w USING fts5(body, tokenize='ascii', detail=none)")
    database.execute("CREATE VIRTUAL TABLE v USING fts5vocab(w, 'row')")
    database.execute("INSERT INTO w(rowid, body) VALUES (1, ?)", [text])
    assert {row[0] for row in database.execute("SELECT term FROM v")} == fulltext.ascii_tokens(
        [text]
    )


def test_ascii_tokens_keep_non_ascii_characters_and_lone_surrogates_inside_their_tokens():
    texts = ["caf\u00e9 na\u00efve--x\ud800y", "\u65e5\u672c.a_b z\u00a0z", "", "..."]
    assert fulltext.ascii_tokens(texts) == {
        "caf\u00e9",
        "na\u00efve",
        "x\ud800y",
        "\u65e5\u672c",
        "a",
        "b",
        "z\u00a0z",
    }


# Characters around ASCII words: white space, punctuation, digits, letters whose folding is not
# one to one (U+0130, the Kelvin sign, ß), combining marks, and letters beyond the BMP.
ALPHABET = "abcxyz0129" * 3 + " .,-_'\"@\t\u00e9\u00df\u0130\u212a\u0301\U0001d400\u20ac"


def test_word_needles_find_what_a_scan_finds_in_random_texts(make_mailbox, monkeypatch):
    """On random texts, a word needle (the vocabulary's path, or the trigram index's when it
    is inside too many words) finds exactly the messages whose text holds it, as a scan of
    the stored texts finds them, for BODY and TEXT."""
    import random

    rng = random.Random(19)
    inbox, texts = indexed_random_texts(make_mailbox("random@example.org"), rng, ALPHABET, 120, 20)
    needles = {"abc", "x0", "zz", "a1", "cab"}
    for header, body in texts.values():  # substrings of the texts' ASCII runs
        for run_ in re.findall("[0-9a-z]{3,}", body + " " + header):
            start = rng.randrange(len(run_) - 2)
            needles.add(run_[start : start + rng.randint(3, 6)])
    monkeypatch.setattr(selectors, "blob_read", _no_reading)
    for words in (1000, 1):
        monkeypatch.setattr(fulltext, "WORDS_PER_NEEDLE", {"sqlite": words, "postgresql": words})
        for needle in sorted(needles):
            in_body = sorted(uid for uid, (_h, body) in texts.items() if needle in body)
            in_text = sorted(uid for uid, (h, body) in texts.items() if needle in h + body)
            assert s.search(inbox.id, s.parse_keys(f"BODY {needle}"), seq_uids=sorted(texts)) == (
                in_body
            ), (needle, words)
            assert s.search(inbox.id, s.parse_keys(f"TEXT {needle}"), seq_uids=sorted(texts)) == (
                in_text
            ), (needle, words)


def indexed_random_texts(mailbox, rng, alphabet: str, body: int, subject: int):  # noqa: ANN001, ANN201
    """The mailbox's INBOX with 60 messages of random characters of the alphabet (bodies up
    to `body` long, subjects up to `subject`), indexed, and their texts by UID."""
    folder = selectors.folder_get(mailbox, "INBOX")
    for _ in range(60):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, body)))
        line = "".join(rng.choices(alphabet, k=rng.randint(0, subject))).replace("\t", " ")
        raw = (
            f"Subject: {line}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
        ).encode()
        services.message_append(folder=folder, raw=raw, flags=[])
    fulltext.index_all()
    return folder, _texts_by_uid(folder)


def _texts_by_uid(folder) -> dict[int, tuple[str, str]]:
    blobs = dict(Message.objects.filter(folder=folder).values_list("blob_id", "uid"))
    return {
        blobs[text.blob_id]: (text.header, text.body)
        for text in BlobText.objects.filter(blob_id__in=blobs)
    }


def test_a_folder_with_many_word_matches_is_walked_in_its_uid_blob_index(word_folder, monkeypatch):
    """PostgreSQL: a folder's search with many matches of a word needle can walk the folder in
    an index-only scan of (folder, uid) carrying the blob ids (migration 0028), never reading
    the wide message rows (at 100k: 8,665 pages of rows for their blob ids). Planned with
    scans of the rows ruled out, as a folder of 100k messages makes them costly."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mailboxes import search as mailbox_search

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's index (SQLite joins the matches to its blob index)")
    fulltext.index_all()
    monkeypatch.setattr(mailbox_search, "FEW_TEXT_MATCHES", 0)
    with CaptureQueriesContext(connection) as captured:
        found = run(word_folder, "BODY report ALL")  # BODY alone: the function of 0029
    (sql,) = [
        q["sql"]
        for q in captured.captured_queries
        if f"{fulltext.WORDS_TABLE}_matching(" in q["sql"] and "mailboxes_message" in q["sql"]
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using message_folder_uid_blob" in plan, plan
    assert found


@pytest.mark.parametrize("few", [2000, 0], ids=["rare path", "common path"])
@pytest.mark.parametrize("where", ["BODY", "TEXT"])
def test_a_word_needle_alone_reads_the_words_index_once_on_postgresql(
    word_folder, monkeypatch, few, where
):
    """PostgreSQL: a folder's search for a word needle alone is one call of a function
    (0029) that reads the vocabulary and the words index once and answers the UIDs as one
    string. The search asked the words index twice, the first FEW_TEXT_MATCHES + 1 matches
    to tell a rare needle from a common one (a PL/pgSQL function made all its rows first:
    10-20 ms for a common needle at 100k) and again in the search's statement. Its few or
    many matches go to the blob index or the walk of the folder, as before; no row of the
    messages is scanned whole."""
    from django.db import connection

    from mailboxes import search as mailbox_search

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's words index (SQLite: test_a_word_needle_reads_no_text_on_sqlite)")
    read = run(word_folder, f"{where} report")
    assert read
    fulltext.index_all()
    monkeypatch.setattr(mailbox_search, "FEW_TEXT_MATCHES", few)
    every = [m.uid for m in Message.objects.filter(folder=word_folder).order_by("uid")]
    key = s.parse_keys(f"{where} report")
    # the words indexes, the header's trigram index, and the tables whose sequential scans
    # (of the messages, the words) would read every row
    names = [f"{fulltext.WORDS_TABLE}_body", f"{fulltext.WORDS_TABLE}_header"]
    names += [f"{fulltext.TABLE}_header_trgm", "mailboxes_message", fulltext.WORDS_TABLE]
    before = _scans(names)
    found = s.search(word_folder.id, key, seq_uids=every)
    scans = {name: count - before[name] for name, count in _scans(names).items()}
    assert [every.index(uid) + 1 for uid in found] == read
    # one bitmap scan of the body's words index, and for TEXT of the header's trigram index
    # (since 0047: the vocabulary holds the body's words alone)
    text = 1 if where == "TEXT" else 0
    assert scans == dict(zip(names, [1, 0, text, 0, 0], strict=True))


def _scans(names: list[str]) -> dict[str, int]:
    """This transaction's scans of these indexes (of these tables: their sequential scans)
    so far, as PostgreSQL counts them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_stat_get_xact_numscans(oid) FROM pg_class WHERE relname = ANY(%s)",
            [names],
        )
        return dict(cursor.fetchall())


@pytest.mark.parametrize("few", [2000, 0], ids=["rare path", "common path"])
def test_a_word_needle_alone_answers_only_the_view(word_folder, monkeypatch, few):
    """The UIDs a search for one text key alone takes from the index are those of the
    session's view: a message the view lacks (gone from it, or past its last UID) is not
    answered, with the view's stretches with and without gaps."""
    from mailboxes import search as mailbox_search

    fulltext.index_all()
    monkeypatch.setattr(mailbox_search, "FEW_TEXT_MATCHES", few)
    every = [m.uid for m in Message.objects.filter(folder=word_folder).order_by("uid")]
    matching = s.search(word_folder.id, s.parse_keys("BODY report"), seq_uids=every)
    assert len(matching) >= 4
    for view in (every[1:], every[:-2], every[::2], [every[0], *every[3:]]):
        expected = [uid for uid in matching if uid in view]
        assert s.search(word_folder.id, s.parse_keys("BODY report"), seq_uids=view) == expected


LONG_RUN = "q" * 130 + "report" + "z" * 70  # one run of 206 letters: windows on PostgreSQL


@pytest.mark.parametrize("needle", ["report", "q" * 51, "z" * 51, "qreportz", "q" * 52])
def test_a_needle_inside_a_long_run_is_found(make_mailbox, monkeypatch, needle):
    """A run of letters longer than fulltext.WORD_LONGEST is kept as windows (PostgreSQL): a
    needle anywhere inside it is found, as reading finds it; a longer needle than a window
    holds goes to the trigram index."""
    mailbox = make_mailbox("long@example.org")
    inbox = selectors.folder_get(mailbox, "INBOX")
    for body in (LONG_RUN, "a report", "nothing"):
        raw = f"Subject: s\r\n\r\n{body}\r\n".encode()
        services.message_append(folder=inbox, raw=raw, flags=[])
    read = run(inbox, f"BODY {needle}")
    assert read == ([1, 2] if needle == "report" else [1])
    fulltext.index_all()
    monkeypatch.setattr(selectors, "blob_read", _no_reading)
    assert run(inbox, f"BODY {needle}") == read


@pytest.mark.parametrize("length", [1, 50, 51, 100, 101, 149, 150, 151, 250, 1000])
def test_words_of_holds_every_short_substring_of_a_run(length):
    """Every substring of a run of up to WORD_STEP + 1 characters lies inside one of the words
    words_of keeps of it, and each word is a substring of the text."""
    run_text = "".join("abcdefghij"[(i * 7 + i // 10) % 10] for i in range(length))
    text = f"é {run_text}.x"
    words = fulltext.words_of(text)
    assert all(word in text and len(word) <= fulltext.WORD_LONGEST for word in words)
    for size in range(1, min(length, fulltext.WORD_STEP + 1) + 1):
        for start in range(length - size + 1):
            part = run_text[start : start + size]
            assert any(part in word for word in words), (length, start, size)


@pytest.mark.django_db(transaction=True)
def test_the_migration_puts_texts_indexed_before_it_in_the_words_index():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    sqlite = connection.vendor == "sqlite"
    before = [("mailboxes", "0023_private_seen" if sqlite else "0024_fts_words")]
    executor = MigrationExecutor(connection)
    after = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO mailboxes_blob(name, size, data, created_at)"
                " VALUES ('inline:migrate-words', 1, %s, CURRENT_TIMESTAMP)",
                [b"\x00"],
            )
            cursor.execute("SELECT id FROM mailboxes_blob WHERE name = 'inline:migrate-words'")
            (blob_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO mailboxes_blobtext(blob_id, header, body) VALUES (%s, %s, %s)",
                [blob_id, "subject: older", "an older quarterly text"],
            )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        with connection.cursor() as cursor:
            if sqlite:
                cursor.execute(
                    f"SELECT rowid FROM {fulltext.WORDS_TABLE} WHERE {fulltext.WORDS_TABLE}"
                    " MATCH '\"quarterly\"'"
                )
                assert [row[0] for row in cursor.fetchall()] == [blob_id]
                cursor.execute(f"SELECT word FROM {fulltext.VOCABULARY} ORDER BY word")
                assert [row[0] for row in cursor.fetchall()] == ["an", "older", "quarterly", "text"]
            else:
                cursor.execute(f"SELECT blob_id, header, body FROM {fulltext.WORDS_TABLE}")
                assert cursor.fetchall() == [
                    (blob_id, ["older", "subject"], ["an", "older", "quarterly", "text"])
                ]
                cursor.execute(f"SELECT word FROM {fulltext.VOCABULARY} ORDER BY word")
                # the text parts' words alone (0047)
                assert [row[0] for row in cursor.fetchall()] == ["an", "older", "quarterly", "text"]
        assert fulltext.matching_ids("body", "quarter") == [blob_id]
        assert fulltext.matching_ids("text", "subj") == [blob_id]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM mailboxes_blobtext WHERE blob_id = %s", [blob_id])
            cursor.execute("DELETE FROM mailboxes_blob WHERE id = %s", [blob_id])
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_sqlite_vocabulary_migration_fills_the_vocabulary_from_the_texts():
    """0027 (SQLite): the words index is rebuilt with the ascii tokenizer from the texts
    indexed before it, and the vocabulary holds each of their tokens whole, one longer than
    FTS5 keeps (32 KiB) too; backwards, the unicode61 words index is back. On both
    databases the blob index of messages is (blob, folder, uid)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    sqlite = connection.vendor == "sqlite"
    long_run = "a" * 33_000 + "zq"
    bodies = ["déjà-vu café2024x and quarterly", f"x {long_run} y", "unicode61 kept déjà whole"]
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("mailboxes", "0026_fts_words_matching")])
    blob_ids = []
    try:
        with connection.cursor() as cursor:
            for number, body in enumerate(bodies):
                cursor.execute(
                    "INSERT INTO mailboxes_blob(name, size, data, created_at)"
                    " VALUES (%s, 1, %s, CURRENT_TIMESTAMP)",
                    [f"inline:migrate-vocabulary-{number}", b"\x00"],
                )
                cursor.execute(
                    "SELECT id FROM mailboxes_blob WHERE name = %s",
                    [f"inline:migrate-vocabulary-{number}"],
                )
                blob_ids.append(cursor.fetchone()[0])
                cursor.execute(
                    "INSERT INTO mailboxes_blobtext(blob_id, header, body) VALUES (%s, %s, %s)",
                    [blob_ids[-1], "subject: s", body],
                )
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
        if sqlite:  # (on PostgreSQL texts written without their words have none: 0025)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT word FROM {fulltext.VOCABULARY}")
                assert {row[0] for row in cursor.fetchall()} == fulltext.ascii_tokens(bodies)
                cursor.execute(
                    f"SELECT count(*) FROM {fulltext.WORDS_TABLE} WHERE"
                    f" {fulltext.WORDS_TABLE} MATCH '\"café2024x\"'"  # one ascii token
                )
                assert cursor.fetchone()[0] == 1
            assert fulltext.matching_ids("body", "afe2024") == []
            assert fulltext.matching_ids("body", "2024x") == [blob_ids[0]]
            assert fulltext.matching_ids("body", "azq") == [blob_ids[1]]
            assert fulltext.matching_ids("body", "icode6") == [blob_ids[2]]
        assert _message_indexes() == {"message_blob_folder_uid": ["blob_id", "folder_id", "uid"]}
        executor = MigrationExecutor(connection)
        executor.migrate([("mailboxes", "0026_fts_words_matching")])
        assert _message_indexes() == {"mailboxes_message_blob_id_7773ef7b": ["blob_id"]}
        if sqlite:
            with connection.cursor() as cursor:  # unicode61: "café2024x" is "café2024x"...
                cursor.execute(
                    f"SELECT count(*) FROM {fulltext.WORDS_TABLE} WHERE"
                    f" {fulltext.WORDS_TABLE} MATCH '\"déjà\"'"  # ...and "déjà-vu" two words
                )
                assert cursor.fetchone()[0] == 2
    finally:
        with connection.cursor() as cursor:
            for blob_id in blob_ids:
                cursor.execute("DELETE FROM mailboxes_blobtext WHERE blob_id = %s", [blob_id])
                cursor.execute("DELETE FROM mailboxes_blob WHERE id = %s", [blob_id])
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)


def _message_indexes() -> dict[str, list[str]]:
    """The indexes of mailboxes_message whose first column is blob_id."""
    from django.db import connection

    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "mailboxes_message")
    return {
        name: spec["columns"]
        for name, spec in found.items()
        if spec["index"] and not spec["foreign_key"] and spec["columns"][:1] == ["blob_id"]
    }


@pytest.mark.django_db(transaction=True)
def test_the_indexer_asks_once_for_a_short_batch(make_mailbox, settings, monkeypatch):
    settings.MAILHOST_FTS_INTERVAL = 3600  # only the deliveries' events wake it
    make_mailbox("owner@example.org")
    asked = []
    real_pending = fulltext.pending
    monkeypatch.setattr(fulltext, "pending", lambda **kw: asked.append(kw) or real_pending(**kw))
    indexer = fulltext.Indexer()
    indexer.start()
    try:
        time.sleep(0.3)
        for word in ("zebra", "yak"):
            services.message_deliver(
                raw=f"Subject: hi\r\n\r\n{word} crossing\r\n".encode(),
                recipients=["owner@example.org"],
            )
            deadline = time.monotonic() + 10
            while not BlobText.objects.filter(body__contains=word).exists():
                assert time.monotonic() < deadline, "not indexed"
                time.sleep(0.05)
    finally:
        indexer.stop()
        indexer.join(5)
    # Once at the start (nothing), then once a delivery: the short batch asks no more.
    assert len(asked) == 3

"""PostgreSQL: the vocabulary holds the words of the text parts alone, and the header half of a
word needle's TEXT search asks the header's trigram index (as 0046's function does).

Since 0046 a body needle whose piece lies inside more than WORDS_PER_NEEDLE (1000) words of the
vocabulary reads every text, where the body's trigram index proposed few. The header fields'
tokens flooded the vocabulary: at bench/fts.py's 100k messages, "sender<N>" and "fts-<N>" made
"sen", "der" and "ende" each part of 100k words (of 233k), and their SEARCH BODY took 242-335 ms
of CPU against 29-84 with the body's trigram index; real headers add Message-IDs and DKIM
signatures' base64. The body's words alone are what a body needle is looked for in."""

from importlib import import_module

from django.db import migrations

on_postgresql = import_module("mailboxes.migrations.0026_fts_words_matching").on_postgresql
before = import_module("mailboxes.migrations.0029_fts_words_matching_limit")

TABLE = "mailboxes_blobtext"
WORDS = "mailboxes_blobtext_words"
VOCABULARY = "mailboxes_blobtext_vocabulary"
WORDS_OF_NEEDLE = before.WORDS_OF_NEEDLE


def add_words(columns: str) -> str:
    """The vocabulary trigger's function (0025's), adding the words of these columns."""
    return (
        f"CREATE OR REPLACE FUNCTION {VOCABULARY}_add() RETURNS trigger AS $$ BEGIN"
        f" INSERT INTO {VOCABULARY}(word) SELECT DISTINCT w FROM added,"
        f" unnest({columns}) w ORDER BY 1 ON CONFLICT DO NOTHING;"
        " RETURN NULL; END $$ LANGUAGE plpgsql"
    )


def refill(columns: str) -> list[str]:
    return [
        f"DELETE FROM {VOCABULARY}",
        f"INSERT INTO {VOCABULARY}(word) SELECT DISTINCT w FROM {WORDS}, unnest({columns}) w",
    ]


# The header half: the header fields' trigram index proposes, LIKE decides.
HEADER = f"SELECT t.blob_id FROM {TABLE} t WHERE t.header LIKE pattern"
MATCHING = (
    f"CREATE OR REPLACE FUNCTION {WORDS}_matching(pattern text, in_header boolean,"
    " max_rows bigint DEFAULT NULL) RETURNS SETOF bigint"
    " LANGUAGE plpgsql STABLE ROWS 1000 SET enable_seqscan = off SET enable_indexscan = off"
    " AS $$ BEGIN"
    " IF in_header THEN"
    f" RETURN QUERY SELECT w.blob_id FROM {WORDS} w WHERE w.body && {WORDS_OF_NEEDLE}"
    f" UNION {HEADER} LIMIT max_rows;"
    " ELSE"
    f" RETURN QUERY SELECT w.blob_id FROM {WORDS} w WHERE w.body && {WORDS_OF_NEEDLE}"
    " LIMIT max_rows;"
    " END IF; END $$"
)
FOLDER_UIDS = before.FOLDER_UIDS.replace(
    f"ARRAY(SELECT w.blob_id FROM {WORDS} w WHERE w.header && words OR w.body && words)",
    f"ARRAY(SELECT w.blob_id FROM {WORDS} w WHERE w.body && words UNION {HEADER})",
).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
assert FOLDER_UIDS != before.FOLDER_UIDS.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")

FORWARDS = [add_words("added.body"), *refill("body"), MATCHING, FOLDER_UIDS]
BACKWARDS = [
    add_words("added.header || added.body"),
    *refill("header || body"),
    before.function(limit=True).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"),
    before.FOLDER_UIDS.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0046_fts_body_words_postgresql"),
    ]

    operations = [migrations.RunPython(on_postgresql(FORWARDS), on_postgresql(BACKWARDS))]

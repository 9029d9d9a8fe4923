"""PostgreSQL: the body's pg_trgm index is dropped, and its needles answered from the words index.

Indexing a 10 KB text of words (bench/fts.py's, 1500 words) cost the backend 38 M instructions
in the body's trigram index (its GIN pending list and the list's merge), against 21 M for the
words and the vocabulary, 0.4 M for the header's trigram index and 1.5 M for the row itself
(callgrind of a single-user backend, 200 texts onto 3000). A needle of one word was already
answered from the words index (0025); any other (several words, punctuation, non-ASCII) is now
answered by mailboxes_blobtext_containing: the texts whose words hold its runs (each run
between other characters a whole word, a run at an end the end or start of one, through the
vocabulary's trigram index) are each checked with LIKE; the header keeps its trigram index. A
needle with no run to look up reads every text, as one under three characters did before.

The words are now the runs of ASCII letters and digits and of non-ASCII characters (SQLite's
ascii tokenizer's), so that a needle of non-ASCII letters has a run to look up: the words of the
texts holding any non-ASCII character are made again here."""

from importlib import import_module

from django.db import migrations

on_postgresql = import_module("mailboxes.migrations.0026_fts_words_matching").on_postgresql

TABLE = "mailboxes_blobtext"
WORDS = "mailboxes_blobtext_words"
VOCABULARY = "mailboxes_blobtext_vocabulary"
CONTAINING = "mailboxes_blobtext_containing"
BODY_TRIGRAMS = f"{TABLE}_body_trgm"

# The texts holding the needle (LIKE's `pattern`): those whose words hold every word of `exact`
# and, for each LIKE pattern of `edges`, a word of the vocabulary it matches, each checked with
# LIKE (a pattern matching more than `bound` words is not asked: the others decide); with
# `in_header`, those whose header the header's trigram index gives too. The candidates are read
# first into an array, by bitmap scans of the GIN index alone (never a walk of the words' key,
# each row's words read from TOAST, as 0029 says), then the texts looked up by bitmap scans of
# their key. At most `max_rows` (NULL: all).
FUNCTION = (
    f"CREATE FUNCTION {CONTAINING}(pattern text, exact text[], edges text[], in_header boolean,"
    " bound integer, max_rows bigint DEFAULT NULL) RETURNS SETOF bigint"
    " LANGUAGE plpgsql STABLE ROWS 1000 SET enable_seqscan = off SET enable_indexscan = off AS $$"
    " DECLARE edge text; words text[]; test text := ''; blobs bigint[]; body text; BEGIN"
    " IF cardinality(exact) > 0 THEN test := ' AND w.body @> ' || quote_literal(exact); END IF;"
    " FOREACH edge IN ARRAY edges LOOP"
    f" words := ARRAY(SELECT v.word FROM {VOCABULARY} v WHERE v.word LIKE edge LIMIT bound + 1);"
    " IF cardinality(words) <= bound THEN"
    " test := test || ' AND w.body && ' || quote_literal(words); END IF;"
    " END LOOP;"
    " IF test = '' THEN"
    f" body := 'SELECT t.blob_id FROM {TABLE} t WHERE t.body LIKE $1';"
    " ELSE"
    f" EXECUTE 'SELECT ARRAY(SELECT w.blob_id FROM {WORDS} w WHERE true' || test || ')'"
    " INTO blobs;"
    f" body := 'SELECT t.blob_id FROM {TABLE} t WHERE t.blob_id = ANY($2) AND t.body LIKE $1';"
    " END IF;"
    " IF in_header THEN"
    f" body := body || ' UNION SELECT t.blob_id FROM {TABLE} t WHERE t.header LIKE $1';"
    " END IF;"
    " RETURN QUERY EXECUTE body || ' LIMIT $3' USING pattern, blobs, max_rows;"
    " END $$"
)
FORWARDS = [f"DROP INDEX IF EXISTS {BODY_TRIGRAMS}", FUNCTION]
BACKWARDS = [
    f"DROP FUNCTION IF EXISTS {CONTAINING}(text, text[], text[], boolean, integer, bigint)",
    f"CREATE INDEX IF NOT EXISTS {BODY_TRIGRAMS} ON {TABLE} USING gin (body gin_trgm_ops)",
]
BATCH = 2000


def words_again(apps, schema_editor):
    """The words of every text holding a non-ASCII character, made again by words_of (an
    ASCII text's words are what they were). The vocabulary gains the new words by its
    trigger; the words no text holds any longer stay in it, finding nothing."""
    if schema_editor.connection.vendor != "postgresql":
        return
    from mailboxes.fulltext import words_of

    last = 0
    with schema_editor.connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"SELECT blob_id, header, body FROM {TABLE} WHERE blob_id > %s"
                " ORDER BY blob_id LIMIT %s",
                [last, BATCH],
            )
            texts = cursor.fetchall()
            if not texts:
                break
            last = texts[-1][0]
            changed = [(b, h, t) for b, h, t in texts if not (h.isascii() and t.isascii())]
            if changed:
                cursor.execute(
                    f"UPDATE {WORDS} w SET header = string_to_array(x.h, ' '),"
                    " body = string_to_array(x.t, ' ')"
                    " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS x(b, h, t)"
                    " WHERE w.blob_id = x.b",
                    [
                        [b for b, _h, _t in changed],
                        [" ".join(words_of(h)) for _b, h, _t in changed],
                        [" ".join(words_of(t)) for _b, _h, t in changed],
                    ],
                )


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0045_fts_header_trigrams_sqlite"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARDS), on_postgresql(BACKWARDS)),
        migrations.RunPython(words_again, migrations.RunPython.noop),
    ]

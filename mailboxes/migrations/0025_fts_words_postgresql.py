"""Full-text search on PostgreSQL, beside the pg_trgm indexes: the words of each text (its runs
of ASCII letters and digits, fulltext.words_of) in mailboxes_blobtext_words with GIN indexes,
and the vocabulary of every word any text holds, with a pg_trgm index, filled by a trigger. A
needle of ASCII letters and digits is looked up in the vocabulary (the words it is part of),
then those words in the words index: exact, and no text is read. pg_trgm's candidates were
each checked on their text, 44,624 texts at 100k messages for a common needle.

The word lists are stored out of line (a row keeps a pointer), so that a search reads only
the ids of the rows the index gives: 7 MiB of rows at 100k texts. The words go with their text
by triggers rather than a foreign key, which would refuse a TRUNCATE of the texts."""

from django.db import migrations

WORDS = "mailboxes_blobtext_words"
VOCABULARY = "mailboxes_blobtext_vocabulary"
TABLES = [
    f"CREATE TABLE {WORDS} (blob_id bigint PRIMARY KEY,"
    " header text[] NOT NULL, body text[] NOT NULL)",
    f"ALTER TABLE {WORDS} ALTER COLUMN header SET STORAGE EXTERNAL,"
    " ALTER COLUMN body SET STORAGE EXTERNAL",
    f"ALTER TABLE {WORDS} SET (toast_tuple_target = 128)",
    f"CREATE TABLE {VOCABULARY} (word text PRIMARY KEY)",
]
# After the words of the existing texts are in (building an index is faster than growing it).
INDEXES = [
    f"INSERT INTO {VOCABULARY}(word) SELECT DISTINCT w FROM {WORDS}, unnest(header || body) w",
    f"CREATE INDEX {WORDS}_header ON {WORDS} USING gin (header)",
    f"CREATE INDEX {WORDS}_body ON {WORDS} USING gin (body)",
    f"CREATE INDEX {VOCABULARY}_trgm ON {VOCABULARY} USING gin (word gin_trgm_ops)",
    # New words in word order, so that two batches adding the same words wait, not deadlock.
    f"CREATE FUNCTION {VOCABULARY}_add() RETURNS trigger AS $$ BEGIN"
    f" INSERT INTO {VOCABULARY}(word) SELECT DISTINCT w FROM added,"
    " unnest(added.header || added.body) w ORDER BY 1 ON CONFLICT DO NOTHING;"
    " RETURN NULL; END $$ LANGUAGE plpgsql",
    f"CREATE TRIGGER {VOCABULARY}_ai AFTER INSERT ON {WORDS} REFERENCING NEW TABLE AS added"
    f" FOR EACH STATEMENT EXECUTE FUNCTION {VOCABULARY}_add()",
    f"CREATE TRIGGER {VOCABULARY}_au AFTER UPDATE ON {WORDS} REFERENCING NEW TABLE AS added"
    f" FOR EACH STATEMENT EXECUTE FUNCTION {VOCABULARY}_add()",
    f"CREATE FUNCTION {WORDS}_remove() RETURNS trigger AS $$ BEGIN"
    f" DELETE FROM {WORDS} w USING removed WHERE w.blob_id = removed.blob_id;"
    " RETURN NULL; END $$ LANGUAGE plpgsql",
    f"CREATE TRIGGER {WORDS}_ad AFTER DELETE ON mailboxes_blobtext"
    f" REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION {WORDS}_remove()",
    # Emptying the texts (a test's flush) empties the words and the vocabulary.
    f"CREATE FUNCTION {WORDS}_truncate() RETURNS trigger AS $$ BEGIN"
    f" TRUNCATE {WORDS}, {VOCABULARY}; RETURN NULL; END $$ LANGUAGE plpgsql",
    f"CREATE TRIGGER {WORDS}_at AFTER TRUNCATE ON mailboxes_blobtext"
    f" FOR EACH STATEMENT EXECUTE FUNCTION {WORDS}_truncate()",
]
REVERSE = [
    f"DROP TRIGGER IF EXISTS {WORDS}_at ON mailboxes_blobtext",
    f"DROP TRIGGER IF EXISTS {WORDS}_ad ON mailboxes_blobtext",
    f"DROP FUNCTION IF EXISTS {WORDS}_truncate()",
    f"DROP FUNCTION IF EXISTS {WORDS}_remove()",
    f"DROP TABLE IF EXISTS {WORDS}",
    f"DROP FUNCTION IF EXISTS {VOCABULARY}_add()",
    f"DROP TABLE IF EXISTS {VOCABULARY}",
]
BATCH = 2000


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from mailboxes.fulltext import words_insert

    for statement in TABLES:
        schema_editor.execute(statement)
    last = 0
    with schema_editor.connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT blob_id, header, body FROM mailboxes_blobtext WHERE blob_id > %s"
                " ORDER BY blob_id LIMIT %s",
                [last, BATCH],
            )
            texts = cursor.fetchall()
            if not texts:
                break
            words_insert(cursor, texts)
            last = texts[-1][0]
    for statement in INDEXES:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0024_fts_words"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]

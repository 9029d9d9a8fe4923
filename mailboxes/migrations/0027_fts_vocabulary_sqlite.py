"""Full-text search, fourth form, on SQLite: the words index (0024) keeps FTS5's ascii tokens
(maximal runs of ASCII letters and digits and non-ASCII characters) instead of unicode61's,
beside a vocabulary of every token of every text with a trigram index of its own. A needle of
ASCII letters and digits lies inside one token of each text holding it, so the vocabulary's
words holding it, looked up in the words index, give exactly the texts holding it: no text is
read and no trigram candidate checked (at 100k messages and a needle in 44,624 of them, a
SEARCH BODY's statement took 107 ms of CPU, most of it reading candidates' text).

And on both databases, the message table's index of blobs becomes one of (blob, folder, uid):
a folder's search turns the words index's blobs into UIDs from the index alone. On SQLite a
change of the foreign key's index through the ORM would copy the whole table: the index is
swapped by name instead, which is the same on both databases."""

import re

from django.db import migrations, models

WORDS = "mailboxes_blobtext_words"
VOCABULARY = "mailboxes_blobtext_vocabulary"
TRIGGERS = [
    "CREATE TRIGGER mailboxes_blobtext_ai AFTER INSERT ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(rowid, header, body)"
    " VALUES (new.blob_id, new.header, new.body);"
    f" INSERT INTO {WORDS}(rowid, body) VALUES (new.blob_id, new.body); END",
    "CREATE TRIGGER mailboxes_blobtext_ad AFTER DELETE ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(mailboxes_blobtext_fts, rowid, header, body)"
    " VALUES ('delete', old.blob_id, old.header, old.body);"
    f" INSERT INTO {WORDS}({WORDS}, rowid, body) VALUES ('delete', old.blob_id, old.body); END",
    "CREATE TRIGGER mailboxes_blobtext_au AFTER UPDATE ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(mailboxes_blobtext_fts, rowid, header, body)"
    " VALUES ('delete', old.blob_id, old.header, old.body);"
    f" INSERT INTO {WORDS}({WORDS}, rowid, body) VALUES ('delete', old.blob_id, old.body);"
    " INSERT INTO mailboxes_blobtext_fts(rowid, header, body)"
    " VALUES (new.blob_id, new.header, new.body);"
    f" INSERT INTO {WORDS}(rowid, body) VALUES (new.blob_id, new.body); END",
]
DROP_TRIGGERS = [
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_au",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ad",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ai",
]


def words_table(tokenizer: str) -> str:
    return (
        f"CREATE VIRTUAL TABLE {WORDS} USING fts5(body, content='mailboxes_blobtext',"
        f" content_rowid='blob_id', tokenize='{tokenizer}', detail=none)"
    )


SQLITE = [
    *DROP_TRIGGERS,
    f"DROP TABLE IF EXISTS {WORDS}",
    words_table("ascii"),
    *TRIGGERS,
    f"INSERT INTO {WORDS}({WORDS}) VALUES ('rebuild')",
    f"CREATE TABLE {VOCABULARY} (id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE)",
    # The tokens as FTS5 keeps them (a longer one cut at 32 KiB: filled whole below).
    f"CREATE VIRTUAL TABLE temp.{WORDS}_terms USING fts5vocab(main, {WORDS}, 'row')",
    f"INSERT INTO {VOCABULARY}(word) SELECT term FROM temp.{WORDS}_terms",
    # Substring lookups (detail=full: a phrase of trigrams is exactly a substring).
    f"CREATE VIRTUAL TABLE {VOCABULARY}_fts USING fts5(word, content='{VOCABULARY}',"
    " content_rowid='id', tokenize='trigram case_sensitive 1')",
    f"INSERT INTO {VOCABULARY}_fts({VOCABULARY}_fts) VALUES ('rebuild')",
    f"CREATE TRIGGER {VOCABULARY}_ai AFTER INSERT ON {VOCABULARY} BEGIN"
    f" INSERT INTO {VOCABULARY}_fts(rowid, word) VALUES (new.id, new.word); END",
    f"CREATE TRIGGER {VOCABULARY}_ad AFTER DELETE ON {VOCABULARY} BEGIN"
    f" INSERT INTO {VOCABULARY}_fts({VOCABULARY}_fts, rowid, word)"
    " VALUES ('delete', old.id, old.word); END",
]
SQLITE_REVERSE = [
    f"DROP TRIGGER IF EXISTS {VOCABULARY}_ad",
    f"DROP TRIGGER IF EXISTS {VOCABULARY}_ai",
    f"DROP TABLE IF EXISTS {VOCABULARY}_fts",
    f"DROP TABLE IF EXISTS {VOCABULARY}",
    *DROP_TRIGGERS,
    f"DROP TABLE IF EXISTS {WORDS}",
    words_table("unicode61 remove_diacritics 0"),
    *TRIGGERS,
    f"INSERT INTO {WORDS}({WORDS}) VALUES ('rebuild')",
]
FTS5_LONGEST_TOKEN = 32768  # bytes (FTS5_MAX_TOKEN_SIZE)
# The ascii tokenizer's tokens (mailboxes/fulltext.py TOKEN)
TOKEN = re.compile("[0-9a-zA-Z\x80-\U0010ffff]+")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in SQLITE:
        schema_editor.execute(statement)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT term FROM temp.{WORDS}_terms WHERE length(CAST(term AS BLOB)) >= %s",
            [FTS5_LONGEST_TOKEN],
        )
        cut = [row[0] for row in cursor.fetchall()]
        for term in cut:  # the texts holding it: their whole tokens instead
            cursor.execute(
                f"SELECT t.body FROM mailboxes_blobtext t WHERE t.blob_id IN"
                f" (SELECT rowid FROM {WORDS} WHERE {WORDS} MATCH %s)",
                ['"' + term + '"'],
            )
            tokens = {token for (body,) in cursor.fetchall() for token in TOKEN.findall(body)}
            cursor.executemany(
                f"INSERT OR IGNORE INTO {VOCABULARY}(word) VALUES (%s)", [(t,) for t in tokens]
            )
            if term not in tokens:
                cursor.execute(f"DELETE FROM {VOCABULARY} WHERE word = %s", [term])
    schema_editor.execute(f"DROP TABLE temp.{WORDS}_terms")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


BLOB_INDEX = "mailboxes_message_blob_id_7773ef7b"  # the foreign key's, named by Django


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0026_fts_words_matching"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="blob",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.PROTECT,
                        related_name="messages",
                        to="mailboxes.blob",
                    ),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(
                        fields=["blob", "folder", "uid"], name="message_blob_folder_uid"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "CREATE INDEX message_blob_folder_uid ON mailboxes_message"
                    ' ("blob_id", "folder_id", "uid")',
                    "DROP INDEX message_blob_folder_uid",
                ),
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {BLOB_INDEX}",
                    f'CREATE INDEX {BLOB_INDEX} ON mailboxes_message ("blob_id")',
                ),
            ],
        ),
    ]

"""Full-text search, third form, on SQLite: beside the trigram index, an index of the words of
the text parts (FTS5's unicode61 tokenizer, no positions: about a fifth of the trigram index's
size). A needle that is one word of ASCII letters and digits matches, without reading any text, every
message holding it as a word; only the other candidates of the trigram index (the needle inside
a longer word) are checked on their text. At 100k messages whose every other one holds the
needle, that was 44,600 texts read for a SEARCH BODY, and is now a few."""

from django.db import migrations

SQLITE = [
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_au",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ad",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ai",
    "CREATE VIRTUAL TABLE mailboxes_blobtext_words USING fts5("
    "body, content='mailboxes_blobtext', content_rowid='blob_id',"
    " tokenize='unicode61 remove_diacritics 0', detail=none)",
    "CREATE TRIGGER mailboxes_blobtext_ai AFTER INSERT ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(rowid, header, body)"
    " VALUES (new.blob_id, new.header, new.body);"
    " INSERT INTO mailboxes_blobtext_words(rowid, body) VALUES (new.blob_id, new.body); END",
    "CREATE TRIGGER mailboxes_blobtext_ad AFTER DELETE ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(mailboxes_blobtext_fts, rowid, header, body)"
    " VALUES ('delete', old.blob_id, old.header, old.body);"
    " INSERT INTO mailboxes_blobtext_words(mailboxes_blobtext_words, rowid, body)"
    " VALUES ('delete', old.blob_id, old.body); END",
    "CREATE TRIGGER mailboxes_blobtext_au AFTER UPDATE ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(mailboxes_blobtext_fts, rowid, header, body)"
    " VALUES ('delete', old.blob_id, old.header, old.body);"
    " INSERT INTO mailboxes_blobtext_words(mailboxes_blobtext_words, rowid, body)"
    " VALUES ('delete', old.blob_id, old.body);"
    " INSERT INTO mailboxes_blobtext_fts(rowid, header, body)"
    " VALUES (new.blob_id, new.header, new.body);"
    " INSERT INTO mailboxes_blobtext_words(rowid, body) VALUES (new.blob_id, new.body); END",
    "INSERT INTO mailboxes_blobtext_words(mailboxes_blobtext_words) VALUES ('rebuild')",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_au",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ad",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ai",
    "DROP TABLE IF EXISTS mailboxes_blobtext_words",
    "CREATE TRIGGER mailboxes_blobtext_ai AFTER INSERT ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(rowid, header, body)"
    " VALUES (new.blob_id, new.header, new.body); END",
    "CREATE TRIGGER mailboxes_blobtext_ad AFTER DELETE ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(mailboxes_blobtext_fts, rowid, header, body)"
    " VALUES ('delete', old.blob_id, old.header, old.body); END",
    "CREATE TRIGGER mailboxes_blobtext_au AFTER UPDATE ON mailboxes_blobtext BEGIN"
    " INSERT INTO mailboxes_blobtext_fts(mailboxes_blobtext_fts, rowid, header, body)"
    " VALUES ('delete', old.blob_id, old.header, old.body);"
    " INSERT INTO mailboxes_blobtext_fts(rowid, header, body)"
    " VALUES (new.blob_id, new.header, new.body); END",
]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in SQLITE if vendor == "sqlite" else []:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in SQLITE_REVERSE if vendor == "sqlite" else []:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0023_private_seen"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]

"""BlobText and its full-text index: on SQLite an FTS5 table with the trigram tokenizer
(substring MATCH for needles of three characters or more) kept in step by triggers; on
PostgreSQL pg_trgm GIN indexes (LIKE '%needle%' uses them)."""

from django.db import migrations, models

SQLITE = [
    "CREATE VIRTUAL TABLE mailboxes_blobtext_fts USING fts5("
    "header, body, content='mailboxes_blobtext', content_rowid='blob_id',"
    " tokenize='trigram case_sensitive 1')",
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
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_au",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ad",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ai",
    "DROP TABLE IF EXISTS mailboxes_blobtext_fts",
]
POSTGRESQL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX mailboxes_blobtext_header_trgm ON mailboxes_blobtext"
    " USING gin (header gin_trgm_ops)",
    "CREATE INDEX mailboxes_blobtext_body_trgm ON mailboxes_blobtext"
    " USING gin (body gin_trgm_ops)",
]
POSTGRESQL_REVERSE = [
    "DROP INDEX IF EXISTS mailboxes_blobtext_body_trgm",
    "DROP INDEX IF EXISTS mailboxes_blobtext_header_trgm",
]


def create_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE, "postgresql": POSTGRESQL}.get(vendor, []):
        schema_editor.execute(statement)


def drop_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE}.get(vendor, []):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0010_subscriptions"),
    ]

    operations = [
        migrations.CreateModel(
            name="BlobText",
            fields=[
                ("blob_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("header", models.TextField()),
                ("body", models.TextField()),
                ("truncated", models.BooleanField(default=False)),
            ],
        ),
        migrations.RunPython(create_index, drop_index),
    ]

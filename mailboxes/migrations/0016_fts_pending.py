"""Full-text search, second form: the FTS5 table keeps no positions (detail=none: about a
quarter of the size; a query ANDs the needle's trigrams and LIKE on the text makes it exact),
and BlobTextPending lists the blobs without text, filled by a trigger on every new blob, so
that a search finds the few unindexed messages without scanning a folder."""

from django.db import migrations, models

SQLITE = [
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_au",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ad",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ai",
    "DROP TABLE IF EXISTS mailboxes_blobtext_fts",
    "CREATE VIRTUAL TABLE mailboxes_blobtext_fts USING fts5("
    "header, body, content='mailboxes_blobtext', content_rowid='blob_id',"
    " tokenize='trigram case_sensitive 1', detail=none)",
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
    "INSERT INTO mailboxes_blobtext_fts(mailboxes_blobtext_fts) VALUES ('rebuild')",
    "CREATE TRIGGER mailboxes_blob_fts_pending AFTER INSERT ON mailboxes_blob BEGIN"
    " INSERT OR IGNORE INTO mailboxes_blobtextpending(blob_id, too_long)"
    " VALUES (new.id, 0); END",
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS mailboxes_blob_fts_pending"]
POSTGRESQL = [
    "CREATE FUNCTION mailboxes_blob_fts_pending() RETURNS trigger AS $$ BEGIN"
    " INSERT INTO mailboxes_blobtextpending(blob_id, too_long) VALUES (NEW.id, false)"
    " ON CONFLICT DO NOTHING; RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER mailboxes_blob_fts_pending AFTER INSERT ON mailboxes_blob"
    " FOR EACH ROW EXECUTE FUNCTION mailboxes_blob_fts_pending()",
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS mailboxes_blob_fts_pending ON mailboxes_blob",
    "DROP FUNCTION IF EXISTS mailboxes_blob_fts_pending()",
]
# Every blob without text yet, or whose text was too long, is pending.
FILL = (
    "INSERT INTO mailboxes_blobtextpending(blob_id, too_long)"
    " SELECT b.id, %s FROM mailboxes_blob b"
    " WHERE NOT EXISTS (SELECT 1 FROM mailboxes_blobtext t WHERE t.blob_id = b.id)"
)


def fill(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    false, true = ("0", "1") if vendor == "sqlite" else ("false", "true")
    schema_editor.execute(
        "INSERT INTO mailboxes_blobtextpending(blob_id, too_long)"
        f" SELECT blob_id, {true} FROM mailboxes_blobtext WHERE truncated"
    )
    schema_editor.execute("DELETE FROM mailboxes_blobtext WHERE truncated")
    schema_editor.execute(FILL % false)


def index_and_trigger(apps, schema_editor):
    # After the RemoveField: on SQLite that may rebuild mailboxes_blobtext, and its triggers go.
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE, "postgresql": POSTGRESQL}.get(vendor, []):
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE}.get(vendor, []):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0015_message_preview"),
    ]

    operations = [
        migrations.CreateModel(
            name="BlobTextPending",
            fields=[
                ("blob_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("too_long", models.BooleanField(default=False)),
            ],
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.RemoveField(model_name="blobtext", name="truncated"),
        migrations.RunPython(index_and_trigger, backwards),
    ]

"""PostgreSQL: the columns that hold a message's bytes and its searchable text (Blob.data,
BlobText's header and body, their words' arrays) are compressed by LZ4 rather than pglz, the
default, where the server has LZ4 (PostgreSQL 14 and newer built with it; elsewhere nothing
changes). A value over TOAST's threshold (about 2 KB) is compressed as its row is written: a
10 KB message's blob and body text cost pglz some 1.4 M instructions in the backend, at every
delivery and in the indexer. Values already written keep their compression; both are read."""

from django.db import migrations

COLUMNS = {
    "mailboxes_blob": ["data"],
    "mailboxes_blobtext": ["header", "body"],
    "mailboxes_blobtext_words": ["header", "body"],
}


def compression(method: str):  # noqa: ANN201
    def run(apps, schema_editor):  # noqa: ANN001, ANN202
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                " WHERE name = 'default_toast_compression'"
            )
            row = cursor.fetchone()
        if not row or not row[0]:
            return  # before PostgreSQL 14, or built without LZ4
        for table, columns in COLUMNS.items():
            changes = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in columns)
            schema_editor.execute(f"ALTER TABLE {table} {changes}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0043_message_head_one_probe_conversation_no_fk"),
    ]

    operations = [
        migrations.RunPython(compression("lz4"), compression("default")),
    ]

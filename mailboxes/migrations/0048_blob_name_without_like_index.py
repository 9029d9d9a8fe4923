"""Blob.name keeps its unique index alone on PostgreSQL, without the varchar_pattern_ops twin
(no query asks LIKE 'x%' of a blob's name: every one compares it whole). Port 25 writes a blob
row for every message, and each wrote both indexes."""

from django.db import migrations

from mailhost.database import without_like_index


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0047_fts_body_vocabulary_postgresql"),
    ]

    operations = [without_like_index("mailboxes_blob", "name")]

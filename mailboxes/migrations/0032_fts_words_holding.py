"""PostgreSQL: the texts whose words index holds one of some words whole, as a function planned
like mailboxes_blobtext_words_matching (0026, 0029): bitmap scans of the GIN index alone, never
a scan of the words table (each row's words read from TOAST), with a LIMIT of its own. The
webmail's search asks it for the other inflections of a search word (fulltext.inflections)."""

from importlib import import_module

from django.db import migrations

on_postgresql = import_module("mailboxes.migrations.0026_fts_words_matching").on_postgresql

WORDS = "mailboxes_blobtext_words"
FORWARDS = [
    f"CREATE FUNCTION {WORDS}_holding(wanted text[], max_rows bigint DEFAULT NULL)"
    " RETURNS SETOF bigint LANGUAGE plpgsql STABLE ROWS 1000"
    " SET enable_seqscan = off SET enable_indexscan = off AS $$ BEGIN"
    f" RETURN QUERY SELECT w.blob_id FROM {WORDS} w WHERE w.body && wanted LIMIT max_rows;"
    " END $$"
]
BACKWARDS = [f"DROP FUNCTION IF EXISTS {WORDS}_holding(text[], bigint)"]


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0031_message_thread_date"),
    ]

    operations = [migrations.RunPython(on_postgresql(FORWARDS), on_postgresql(BACKWARDS))]

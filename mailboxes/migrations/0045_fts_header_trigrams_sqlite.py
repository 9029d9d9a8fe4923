"""Full-text search on SQLite, fifth form: the trigram table (mailboxes_blobtext_fts) keeps the
header fields alone; the text parts are searched through the words index and its vocabulary
(0027), which already held them (mailboxes/fulltext.py says how). The body's trigrams were
most of the indexer's cost: 1.58 ms of a 10 KB text of English, the words index 0.38 ms. The
triggers that fill the trigram table fill the words index too: they are made again with the
header alone in the trigram table, and the table is rebuilt from the texts. PostgreSQL: none
of this (its trigram indexes are pg_trgm's)."""

from django.db import migrations

FTS = "mailboxes_blobtext_fts"
WORDS = "mailboxes_blobtext_words"
DROP_TRIGGERS = [
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_au",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ad",
    "DROP TRIGGER IF EXISTS mailboxes_blobtext_ai",
]


def trigram_table(columns: list[str]) -> str:
    return (
        f"CREATE VIRTUAL TABLE {FTS} USING fts5({', '.join(columns)}, content='mailboxes_blobtext',"
        " content_rowid='blob_id', tokenize='trigram case_sensitive 1', detail=none)"
    )


def triggers(columns: list[str]) -> list[str]:
    """The triggers of 0027 with these columns in the trigram table (its words index as it was)."""
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    add = f" INSERT INTO {FTS}(rowid, {names}) VALUES (new.blob_id, {new});"
    remove = f" INSERT INTO {FTS}({FTS}, rowid, {names}) VALUES ('delete', old.blob_id, {old});"
    add_words = f" INSERT INTO {WORDS}(rowid, body) VALUES (new.blob_id, new.body);"
    remove_words = f" INSERT INTO {WORDS}({WORDS}, rowid, body) VALUES ('delete', old.blob_id, old.body);"
    return [
        f"CREATE TRIGGER mailboxes_blobtext_ai AFTER INSERT ON mailboxes_blobtext BEGIN{add}{add_words} END",
        f"CREATE TRIGGER mailboxes_blobtext_ad AFTER DELETE ON mailboxes_blobtext BEGIN{remove}{remove_words} END",
        "CREATE TRIGGER mailboxes_blobtext_au AFTER UPDATE ON mailboxes_blobtext BEGIN"
        f"{remove}{remove_words}{add}{add_words} END",
    ]


def rebuild(columns: list[str]) -> list[str]:
    return [
        *DROP_TRIGGERS,
        f"DROP TABLE IF EXISTS {FTS}",
        trigram_table(columns),
        *triggers(columns),
        f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')",
    ]


def run(columns: list[str]):  # noqa: ANN201
    def statements(apps, schema_editor):  # noqa: ANN001, ANN202
        if schema_editor.connection.vendor == "sqlite":
            for statement in rebuild(columns):
                schema_editor.execute(statement)

    return statements


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0044_blob_text_lz4"),
    ]

    operations = [
        migrations.RunPython(run(["header"]), run(["header", "body"])),
    ]

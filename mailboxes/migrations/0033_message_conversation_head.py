"""Message.conversation_head: whether a message is the newest (highest UID) of its
conversation (thread_key) in its folder, with a partial index of those rows by (folder, UID).
The webmail's list reads a page of conversations from that index and stops; it walked the
folder and asked of each row whether its conversation had a newer message, so a folder of one
conversation of 100k passed 99,999 rows to find there was no other.

The mark is kept by triggers, on both databases, so that every write path keeps it: delivery,
APPEND, COPY and MOVE (an INSERT: the new row is its conversation's newest unless a row with a
higher UID is there, and the one before it is no longer), EXPUNGE, POP3, retention and a
folder's deletion (a DELETE of the newest makes the highest UID left of its conversation the
newest), and an UPDATE of a row's folder, UID or thread_key (both). Each is one or two probes of
the (folder, thread_key, uid) index and at most one row changed. No flag change fires them.

The column is added with a constant default (SQLite and PostgreSQL 11+ rewrite no row for
that), then the rows that are not their conversation's newest are cleared in one statement, and
the index is built over the result.

SQLite keeps a table's triggers only as long as the table: a later migration that makes Django
rebuild mailboxes_message on SQLite (most AlterFields there) must run SQLITE_TRIGGERS again."""

from django.db import migrations, models

TABLE = "mailboxes_message"
# The conversation's newest message in a folder: the highest UID of (folder, thread_key),
# one backward probe of message_folder_thread_flags.
NEWEST = (
    f"(SELECT max(p.uid) FROM {TABLE} p"
    " WHERE p.folder_id = {0}.folder_id AND p.thread_key = {0}.thread_key{1})"
)
NEWER_THAN_NEW = (
    f"EXISTS (SELECT 1 FROM {TABLE} n WHERE n.folder_id = NEW.folder_id"
    " AND n.thread_key = NEW.thread_key AND n.uid > NEW.uid)"
)
# A new row (INSERT, or the new place of an UPDATEd one): the message before it in its
# conversation is no longer the newest; it is, unless a higher UID is there (a UID given, not
# the folder's next) or it has no conversation.
ADDED = [
    f"UPDATE {TABLE} SET conversation_head = FALSE WHERE NEW.thread_key <> ''"
    " AND folder_id = NEW.folder_id AND conversation_head"
    f" AND uid = {NEWEST.format('NEW', ' AND p.uid < NEW.uid')}",
    f"UPDATE {TABLE} SET conversation_head = (NEW.thread_key = '' OR NOT {NEWER_THAN_NEW})"
    f" WHERE id = NEW.id AND conversation_head = (NEW.thread_key <> '' AND {NEWER_THAN_NEW})",
]
# A row gone from its conversation (DELETE, or the old place of an UPDATEd one) that was its
# newest: the highest UID left is.
REMOVED = [
    f"UPDATE {TABLE} SET conversation_head = TRUE WHERE OLD.conversation_head"
    f" AND OLD.thread_key <> '' AND folder_id = OLD.folder_id AND NOT conversation_head"
    f" AND uid = {NEWEST.format('OLD', '')}",
]
MOVED = "OLD.folder_id <> NEW.folder_id OR OLD.thread_key <> NEW.thread_key OR OLD.uid <> NEW.uid"
ADDED_WHEN = "NEW.thread_key <> '' OR NOT NEW.conversation_head"
REMOVED_WHEN = "OLD.conversation_head AND OLD.thread_key <> ''"
COLUMNS = "folder_id, thread_key, uid"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER {TABLE}_head_ai AFTER INSERT ON {TABLE} WHEN {ADDED_WHEN}"
    f" BEGIN {'; '.join(ADDED)}; END",
    f"CREATE TRIGGER {TABLE}_head_ad AFTER DELETE ON {TABLE} WHEN {REMOVED_WHEN}"
    f" BEGIN {'; '.join(REMOVED)}; END",
    f"CREATE TRIGGER {TABLE}_head_au AFTER UPDATE OF {COLUMNS} ON {TABLE} WHEN {MOVED}"
    f" BEGIN {'; '.join(REMOVED + ADDED)}; END",
]
# PostgreSQL runs AFTER ROW triggers once the statement is done, each against its end state:
# each step above sets a row to what that end state makes it, so a statement of many rows
# (COPY's batch, an EXPUNGE) comes out right whatever order they run in.
POSTGRESQL_TRIGGERS = [
    *(
        f"CREATE FUNCTION {TABLE}_head_{name}() RETURNS trigger AS $$ BEGIN"
        f" {'; '.join(steps)}; RETURN NULL; END $$ LANGUAGE plpgsql"
        for name, steps in (("added", ADDED), ("removed", REMOVED), ("moved", REMOVED + ADDED))
    ),
    f"CREATE TRIGGER {TABLE}_head_ai AFTER INSERT ON {TABLE}"
    f" FOR EACH ROW WHEN ({ADDED_WHEN}) EXECUTE FUNCTION {TABLE}_head_added()",
    f"CREATE TRIGGER {TABLE}_head_ad AFTER DELETE ON {TABLE}"
    f" FOR EACH ROW WHEN ({REMOVED_WHEN}) EXECUTE FUNCTION {TABLE}_head_removed()",
    f"CREATE TRIGGER {TABLE}_head_au AFTER UPDATE OF {COLUMNS} ON {TABLE}"
    f" FOR EACH ROW WHEN ({MOVED}) EXECUTE FUNCTION {TABLE}_head_moved()",
]
DROP = [f"DROP TRIGGER IF EXISTS {TABLE}_head_{kind}" for kind in ("ai", "ad", "au")]
POSTGRESQL_DROP = [
    *(f"{statement} ON {TABLE}" for statement in DROP),
    *(f"DROP FUNCTION IF EXISTS {TABLE}_head_{name}()" for name in ("added", "removed", "moved")),
]

# Every row that is not the highest UID of its (folder, thread_key) cleared in one statement.
SQLITE_BACKFILL = (
    f"UPDATE {TABLE} SET conversation_head = FALSE WHERE thread_key <> ''"
    f" AND uid < {NEWEST.format(TABLE, '')}"
)
# PostgreSQL: against each conversation's highest UID, grouped once and joined by hash (a
# correlated probe per row is what it planned as a scan per row before: d42af35).
POSTGRESQL_BACKFILL = (
    f"UPDATE {TABLE} m SET conversation_head = FALSE FROM (SELECT folder_id, thread_key,"
    f" max(uid) AS newest FROM {TABLE} WHERE thread_key <> '' GROUP BY folder_id, thread_key) c"
    " WHERE m.folder_id = c.folder_id AND m.thread_key = c.thread_key AND m.uid < c.newest"
)


def add_column(apps, schema_editor):  # noqa: ANN001, ANN201
    postgresql = schema_editor.connection.vendor == "postgresql"
    kind = "boolean" if postgresql else "bool"
    schema_editor.execute(
        f'ALTER TABLE {TABLE} ADD COLUMN "conversation_head" {kind} NOT NULL DEFAULT TRUE'
    )
    schema_editor.execute(POSTGRESQL_BACKFILL if postgresql else SQLITE_BACKFILL)


def drop_column(apps, schema_editor):  # noqa: ANN001, ANN201
    schema_editor.execute(f'ALTER TABLE {TABLE} DROP COLUMN "conversation_head"')


def create_triggers(apps, schema_editor):  # noqa: ANN001, ANN201
    postgresql = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):  # noqa: ANN001, ANN201
    postgresql = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL_DROP if postgresql else DROP:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0032_fts_words_holding"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="message",
                    name="conversation_head",
                    field=models.BooleanField(db_default=True, default=True),
                ),
            ],
            database_operations=[migrations.RunPython(add_column, drop_column)],
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("conversation_head", True)),
                fields=["folder", "uid"],
                name="message_conversation_heads",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]

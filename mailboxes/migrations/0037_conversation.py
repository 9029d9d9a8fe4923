"""Conversation: each conversation's counts in a folder (messages, unseen, flagged, with
attachments), kept by triggers on the message table so that the webmail's list reads its page's
summaries in O(the page): it summed them from the (folder, thread_key, ...) index, O(each
conversation), 17 ms of CPU on SQLite for the first page of a conversation of 100k.

Every write path keeps the counts because the database does: delivery, APPEND, COPY and MOVE
(an INSERT adds the message to its conversation's row, making it when it is the first), EXPUNGE,
POP3, retention and a folder's deletion (a DELETE takes it off, removing the row with the last
one), a change of folder or thread_key (both), and STORE (a change of seen, flagged or
has_attachments moves the counts by the difference). Each is one or two probes of the
conversation's primary key. The counts are Message.seen's, the owner's \\Seen, as the list's
summary always was: a reader's own \\Seen on a shared folder (PrivateSeen) is not counted.

Each step adds or takes one row's difference, so the steps commute: on PostgreSQL, where AFTER
ROW triggers run once the statement is done and in any order, a statement of many rows (COPY's
batch, an EXPUNGE, a flag change of 1:*) comes out right, and no count goes below zero on the way
(each row taken off was counted before the statement).

SQLite keeps a table's triggers only as long as the table: a later migration that makes Django
rebuild mailboxes_message on SQLite (most AlterFields there) must run SQLITE_TRIGGERS again, as
it must 0033's. The conversation table is made WITHOUT ROWID on SQLite by this migration's own
statement; a later migration that makes Django rebuild it would make it a rowid table."""

import django.db.models.deletion
from django.db import migrations, models

MESSAGES = "mailboxes_message"
TABLE = "mailboxes_conversation"
COLUMNS = "messages, unseen, flagged, attachments"


def counted(row: str) -> str:
    """What a message row counts for in its conversation's columns, as integers (both
    databases cast a boolean to 0 or 1)."""
    return (
        f"1, CAST(NOT {row}.seen AS integer), CAST({row}.flagged AS integer),"
        f" CAST({row}.has_attachments AS integer)"
    )


# A message into its conversation: its row made, or added to.
ADDED = [
    f"INSERT INTO {TABLE} (folder_id, thread_key, {COLUMNS})"
    f" SELECT NEW.folder_id, NEW.thread_key, {counted('NEW')} WHERE NEW.thread_key <> ''"
    " ON CONFLICT (folder_id, thread_key) DO UPDATE SET"
    f" messages = {TABLE}.messages + 1, unseen = {TABLE}.unseen + excluded.unseen,"
    f" flagged = {TABLE}.flagged + excluded.flagged,"
    f" attachments = {TABLE}.attachments + excluded.attachments",
]
# A message out of its conversation: its row removed with the last message, else taken from.
OLD_ROW = "folder_id = OLD.folder_id AND thread_key = OLD.thread_key"
REMOVED = [
    f"DELETE FROM {TABLE} WHERE {OLD_ROW} AND messages = 1",
    f"UPDATE {TABLE} SET messages = messages - 1,"
    " unseen = unseen - CAST(NOT OLD.seen AS integer),"
    " flagged = flagged - CAST(OLD.flagged AS integer),"
    f" attachments = attachments - CAST(OLD.has_attachments AS integer) WHERE {OLD_ROW}",
]
# A message's flags changed where it is: its conversation's counts by the difference.
FLAGGED = [
    f"UPDATE {TABLE} SET unseen = unseen + CAST(OLD.seen AS integer) - CAST(NEW.seen AS integer),"
    " flagged = flagged + CAST(NEW.flagged AS integer) - CAST(OLD.flagged AS integer),"
    " attachments = attachments + CAST(NEW.has_attachments AS integer)"
    " - CAST(OLD.has_attachments AS integer)"
    " WHERE folder_id = NEW.folder_id AND thread_key = NEW.thread_key",
]
MOVED = "OLD.folder_id <> NEW.folder_id OR OLD.thread_key <> NEW.thread_key"
FLAGS_CHANGED = (
    f"NEW.thread_key <> '' AND NOT ({MOVED}) AND (OLD.seen <> NEW.seen"
    " OR OLD.flagged <> NEW.flagged OR OLD.has_attachments <> NEW.has_attachments)"
)
TRIGGERS = [
    # (name, event, condition, steps)
    ("ai", f"INSERT ON {MESSAGES}", "NEW.thread_key <> ''", ADDED),
    ("ad", f"DELETE ON {MESSAGES}", "OLD.thread_key <> ''", REMOVED),
    ("am", f"UPDATE OF folder_id, thread_key ON {MESSAGES}", MOVED, REMOVED + ADDED),
    ("af", f"UPDATE OF seen, flagged, has_attachments ON {MESSAGES}", FLAGS_CHANGED, FLAGGED),
]
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER {MESSAGES}_count_{name} AFTER {event} WHEN {when}"
    f" BEGIN {'; '.join(steps)}; END"
    for name, event, when, steps in TRIGGERS
]
# Sequential scans off: a session keeps the plans of a function's statements, and planned
# while the table is new or small they would read the whole table for one row (0034).
POSTGRESQL_TRIGGERS = [
    *(
        f"CREATE FUNCTION {MESSAGES}_count_{name}() RETURNS trigger SET enable_seqscan = off"
        f" AS $$ BEGIN {'; '.join(steps)}; RETURN NULL; END $$ LANGUAGE plpgsql"
        for name, _, _, steps in TRIGGERS
    ),
    *(
        f"CREATE TRIGGER {MESSAGES}_count_{name} AFTER {event} FOR EACH ROW WHEN ({when})"
        f" EXECUTE FUNCTION {MESSAGES}_count_{name}()"
        for name, event, when, _ in TRIGGERS
    ),
]
DROP = [f"DROP TRIGGER IF EXISTS {MESSAGES}_count_{name}" for name, *_ in TRIGGERS]
POSTGRESQL_DROP = [
    *(f"{statement} ON {MESSAGES}" for statement in DROP),
    *(f"DROP FUNCTION IF EXISTS {MESSAGES}_count_{name}()" for name, *_ in TRIGGERS),
]
# Every conversation's counts, summed once (on SQLite from the (folder, thread_key, uid, seen,
# flagged, has_attachments) index alone, in the new table's key order).
BACKFILL = (
    f"INSERT INTO {TABLE} (folder_id, thread_key, {COLUMNS}) SELECT folder_id, thread_key,"
    " count(*), sum(CAST(NOT seen AS integer)), sum(CAST(flagged AS integer)),"
    f" sum(CAST(has_attachments AS integer)) FROM {MESSAGES} WHERE thread_key <> ''"
    " GROUP BY folder_id, thread_key"
)


def create(apps, schema_editor):  # noqa: ANN001, ANN201
    model = apps.get_model("mailboxes", "Conversation")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.create_model(model)
        statements = POSTGRESQL_TRIGGERS
    else:
        # The foreign key is in the table's text on SQLite, and the model has no index to add
        sql, params = schema_editor.table_sql(model)
        schema_editor.execute(f"{sql} WITHOUT ROWID", params)
        statements = SQLITE_TRIGGERS
    schema_editor.execute(BACKFILL)
    for statement in statements:
        schema_editor.execute(statement)


def drop(apps, schema_editor):  # noqa: ANN001, ANN201
    postgresql = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL_DROP if postgresql else DROP:
        schema_editor.execute(statement)
    schema_editor.delete_model(apps.get_model("mailboxes", "Conversation"))


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0036_message_folder_no_fk_index"),
    ]

    operations = [
        # The table is made by `create`, WITHOUT ROWID on SQLite, which Django cannot say
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Conversation",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "folder_id", "thread_key", blank=True, editable=False,
                                primary_key=True, serialize=False,
                            ),
                        ),  # fmt: skip
                        ("thread_key", models.CharField(max_length=255)),
                        ("messages", models.IntegerField()),
                        ("unseen", models.IntegerField()),
                        ("flagged", models.IntegerField()),
                        ("attachments", models.IntegerField()),
                        (
                            "folder",
                            models.ForeignKey(
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="conversations",
                                to="mailboxes.folder",
                            ),
                        ),
                    ],
                ),
            ],
        ),
        migrations.RunPython(create, drop),
    ]

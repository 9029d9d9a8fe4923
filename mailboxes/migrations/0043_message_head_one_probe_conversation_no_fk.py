"""PostgreSQL: two more pieces of a delivery's work in the backend, each while the batch holds
its mailbox's and folder's rows (mailboxes.groupcommit), gone.

The conversation_head INSERT trigger (0042) asks its two probes of message_folder_thread_uid in
one SELECT (two subqueries of one plan, INTO two variables), not in a SELECT and an IF of a
subquery: one statement's executor set up and ended where there were two.

The Conversation table loses its foreign key to the folder (Conversation.folder keeps
db_constraint=False in the model): its rows are written by the message table's triggers alone,
from message rows whose own foreign key names the folder, and leave with their messages or with
the folder (Django's cascade, or the counts' DELETE triggers), so the key checked nothing the
message's did not. Its deferred check was a query at every COMMIT for each new conversation. On
SQLite the key stays in the table (a WITHOUT ROWID table that Django's remake would lose); the
model's state names no constraint on either database."""

from importlib import import_module

import django.db.models.deletion
from django.db import migrations, models

plans = import_module("mailboxes.migrations.0034_message_conversation_head_plans")
probes = import_module("mailboxes.migrations.0040_message_conversation_head_probes")
first = import_module("mailboxes.migrations.0042_message_head_added_probes_first")
TABLE = probes.TABLE
KEY = probes.KEY

# The message before NEW in its conversation when it is still marked the newest (its id, else
# NULL), and whether a higher UID of NEW's conversation is there: one statement.
PROBES = (
    f"SELECT (SELECT s.id FROM (SELECT p.id, {KEY}, p.conversation_head FROM {TABLE} p"
    f" WHERE ({KEY}, p.uid) < (NEW.folder_id, NEW.thread_key, NEW.uid)"
    " ORDER BY p.folder_id DESC, p.thread_key DESC, p.uid DESC LIMIT 1) s"
    f" WHERE {probes.same('NEW')} AND s.conversation_head), {probes.NEWER_THAN_NEW}"
    " INTO before_id, newer"
)
ADDED = first.added("before_id bigint; newer boolean", PROBES, "before_id IS NOT NULL", "newer")

CONVERSATIONS = "mailboxes_conversation"


def foreign_key_drop(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("mailboxes", "Conversation")
    for name in schema_editor._constraint_names(model, ["folder_id"], foreign_key=True):
        schema_editor.execute(
            f"ALTER TABLE {CONVERSATIONS} DROP CONSTRAINT {schema_editor.quote_name(name)}"
        )


def foreign_key_add(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("mailboxes", "Conversation")
    if schema_editor._constraint_names(model, ["folder_id"], foreign_key=True):
        return
    name = schema_editor._create_index_name(CONVERSATIONS, ["folder_id"], suffix="_fk_folder")
    schema_editor.execute(
        f"ALTER TABLE {CONVERSATIONS} ADD CONSTRAINT {schema_editor.quote_name(name)}"
        " FOREIGN KEY (folder_id) REFERENCES mailboxes_folder (id) DEFERRABLE INITIALLY DEFERRED"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0042_message_head_added_probes_first"),
    ]

    operations = [
        migrations.RunPython(plans.on_postgresql([ADDED]), plans.on_postgresql([first.ADDED])),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="conversation",
                    name="folder",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="conversations",
                        to="mailboxes.folder",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(foreign_key_drop, foreign_key_add)],
        ),
    ]

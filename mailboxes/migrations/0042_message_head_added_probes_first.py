"""PostgreSQL: a delivery's triggers run an UPDATE only where a row changes. The
conversation_head INSERT trigger (0040) ran two UPDATEs for every new message, each of which
fires the Conversation counts' UPDATE statement trigger (0039, 0041: its transition tables
made and its guard asked) even when it updates nothing, and nothing it is for most deliveries:
a new conversation has no message before the new one to demote, and a new message takes the
folder's UIDNEXT, so no higher UID of its conversation is there. Now the function asks the
same two probes of message_folder_thread_uid first (a SELECT, then an IF) and updates the
message before (by its id) or the new one only when its mark changes. The "moved" function (a
row's folder, thread_key or UID changed) keeps 0040's statements.

NEW.conversation_head is the inserted row's mark as it still is when no higher UID of its
conversation is there: within one INSERT only the trigger of a later row of the same
conversation demotes a row, and that row is then there.

The counts' INSERT statement trigger no longer runs its DELETE of the conversations left at
zero messages: an INSERT only adds messages, so none is ever left at zero by one."""

from importlib import import_module

from django.db import migrations

counts = import_module("mailboxes.migrations.0039_conversation_statement_triggers")
probes = import_module("mailboxes.migrations.0040_message_conversation_head_probes")
plans = import_module("mailboxes.migrations.0034_message_conversation_head_plans")
guard = import_module("mailboxes.migrations.0041_conversation_update_trigger_guard")
TABLE = probes.TABLE
KEY = probes.KEY

# The message before NEW in its conversation when it is still marked the newest.
BEFORE_HEAD = (
    f"SELECT s.id INTO before_id FROM (SELECT p.id, {KEY}, p.conversation_head FROM {TABLE} p"
    f" WHERE ({KEY}, p.uid) < (NEW.folder_id, NEW.thread_key, NEW.uid)"
    " ORDER BY p.folder_id DESC, p.thread_key DESC, p.uid DESC LIMIT 1) s"
    f" WHERE {probes.same('NEW')} AND s.conversation_head"
)


def added(declare: str, probes_sql: str, before_found: str, newer: str) -> str:
    """The conversation_head INSERT trigger's function: `probes_sql` (declaring `declare`)
    finds the message before NEW still marked newest (`before_id`, there when
    `before_found`) and whether a higher UID of NEW's conversation is there (`newer`); an
    UPDATE runs only where a mark changes. 0043 gives it its one-statement probes."""
    body = (
        f"DECLARE {declare}; BEGIN"
        " IF NEW.thread_key <> '' THEN"
        f" {probes_sql};"
        f" IF {before_found} THEN"
        f" UPDATE {TABLE} SET conversation_head = FALSE WHERE id = before_id AND conversation_head;"
        " END IF;"
        f" IF {newer} THEN"
        f" UPDATE {TABLE} SET conversation_head = FALSE WHERE id = NEW.id AND conversation_head;"
        " RETURN NULL;"
        " END IF;"
        " END IF;"
        " IF NOT NEW.conversation_head THEN"
        f" UPDATE {TABLE} SET conversation_head = TRUE WHERE id = NEW.id AND NOT conversation_head;"
        " END IF;"
        " RETURN NULL; END"
    )
    return (
        f"CREATE OR REPLACE FUNCTION {TABLE}_head_added() RETURNS trigger"
        f" SET enable_seqscan = off AS $$ {body} $$ LANGUAGE plpgsql"
    )


ADDED = added("before_id bigint", BEFORE_HEAD, "FOUND", probes.NEWER_THAN_NEW)
ADDED_BEFORE = probes.functions(probes.ADDED, probes.REMOVED)[0]

COUNT_STEPS = {name: steps for name, _, _, steps in counts.STATEMENT_TRIGGERS}["ai"]


def count_added(steps: list[str]) -> str:
    return guard.function(steps, "ai")


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0041_conversation_update_trigger_guard"),
    ]

    operations = [
        migrations.RunPython(
            plans.on_postgresql([ADDED, count_added(COUNT_STEPS[:1])]),
            plans.on_postgresql([ADDED_BEFORE, count_added(COUNT_STEPS)]),
        ),
    ]

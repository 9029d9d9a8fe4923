"""PostgreSQL: each statement of the conversation_head triggers (0033, 0034) is a probe of the
(folder, thread_key, uid) index whatever the table's statistics, as 0034 meant. On a table not
yet ANALYZEd (a new server's first minute, every bench run) its estimates are one row for any
index on folder_id, and the triggers' plans took the first of them, message_folder_deleted
(folder_id, deleted): "the message before the new one" and the row to update were each a
scan of the folder's every message, filtered (6,400 rows read twice a delivery, 900 buffers,
two thirds of the backend's CPU a message on port 25, growing with the folder).

Now the probes are row comparisons, (folder_id, thread_key, uid) < (NEW's), ordered by the
three columns with LIMIT 1: only that index answers such a condition in that order, so every
other plan is a whole index read and a sort. The row found is checked to be of the same
(folder, thread_key) outside the LIMIT, and the row updated is named by its id (the primary
key). What each statement decides is unchanged: the message before the new one in its
conversation is no longer the newest, the new one is unless a higher UID is there, a removed
newest gives the mark to the highest UID left. SQLite keeps 0033's triggers (its planner takes
the index whose columns the equalities name)."""

from importlib import import_module

from django.db import migrations

heads = import_module("mailboxes.migrations.0033_message_conversation_head")
plans = import_module("mailboxes.migrations.0034_message_conversation_head_plans")
TABLE = heads.TABLE
KEY = "p.folder_id, p.thread_key"


def nearest(bound: str, order: str) -> str:
    """The index's nearest entry past `bound` (a row comparison with the new or old row's
    (folder, thread_key, uid)) in `order`, as a subquery of (id, folder_id, thread_key): one probe of
    message_folder_thread_uid, its (folder, thread_key) still to be checked."""
    return (
        f"(SELECT p.id, {KEY} FROM {TABLE} p WHERE {bound}"
        f" ORDER BY p.folder_id {order}, p.thread_key {order}, p.uid {order} LIMIT 1)"
    )


def same(row: str) -> str:
    return f"s.folder_id = {row}.folder_id AND s.thread_key = {row}.thread_key"


# The message before NEW in its conversation, and the conversation's newest (for a removed row).
BEFORE = (
    f"(SELECT s.id FROM"
    f" {nearest(f'({KEY}, p.uid) < (NEW.folder_id, NEW.thread_key, NEW.uid)', 'DESC')}"
    f" s WHERE {same('NEW')})"
)
NEWEST_LEFT = (
    f"(SELECT s.id FROM"
    f" {nearest(f'({KEY}) <= (OLD.folder_id, OLD.thread_key)', 'DESC')}"
    f" s WHERE {same('OLD')})"
)
# Whether NEW's conversation has a higher UID than NEW's.
NEWER_THAN_NEW = (
    f"COALESCE((SELECT {same('NEW')} FROM"
    f" {nearest(f'({KEY}, p.uid) > (NEW.folder_id, NEW.thread_key, NEW.uid)', 'ASC')}"
    f" s), FALSE)"
)
ADDED = [
    f"UPDATE {TABLE} SET conversation_head = FALSE WHERE NEW.thread_key <> ''"
    f" AND id = {BEFORE} AND conversation_head",
    f"UPDATE {TABLE} SET conversation_head = (NEW.thread_key = '' OR NOT {NEWER_THAN_NEW})"
    f" WHERE id = NEW.id AND conversation_head = (NEW.thread_key <> '' AND {NEWER_THAN_NEW})",
]
REMOVED = [
    f"UPDATE {TABLE} SET conversation_head = TRUE WHERE OLD.conversation_head"
    f" AND OLD.thread_key <> '' AND id = {NEWEST_LEFT} AND NOT conversation_head",
]


def functions(added: list[str], removed: list[str]) -> list[str]:
    return [
        f"CREATE OR REPLACE FUNCTION {TABLE}_head_{name}() RETURNS trigger"
        f" SET enable_seqscan = off AS $$ BEGIN {'; '.join(steps)}; RETURN NULL; END $$"
        " LANGUAGE plpgsql"
        for name, steps in (("added", added), ("removed", removed), ("moved", removed + added))
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0039_conversation_statement_triggers"),
    ]

    operations = [
        migrations.RunPython(
            plans.on_postgresql(functions(ADDED, REMOVED)),
            plans.on_postgresql(functions(plans.ADDED, heads.REMOVED)),
        ),
    ]

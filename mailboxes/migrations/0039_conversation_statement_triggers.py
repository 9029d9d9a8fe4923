"""PostgreSQL: the Conversation counts (0037) kept by statement triggers, each adding a
statement's net differences once per conversation, not by row triggers. Every row trigger of a
statement that touched many messages of one conversation updated its one row again, and
PostgreSQL cannot prune the versions one transaction makes of a row: each update walked all the
earlier ones, so STORE 1:* +FLAGS \\Seen on one conversation of 8,000 took 7.8 s (462 ms before
0037) and that folder's deletion 13.9 s (55 ms), growing with the square of the conversation.

A statement trigger with transition tables cannot name columns (UPDATE OF), so the UPDATE one
runs for every UPDATE of the table and counts the rows whose folder, thread_key or flags differ.
SQLite keeps 0037's row triggers: it updates a row in place. What this costs a one-row
transaction on PostgreSQL (backend CPU, triggers off / on, two pairs): a new conversation's
message 270, 230 / 530, 530 us, one more message of a conversation 405, 420 / 725, 875 us,
\\Seen changed 205, 175 / 335, 340 us, where 0037's row triggers stayed inside the noise; many
updates of one row in one transaction, one statement each (an import in one transaction),
still walk each other's versions."""

from importlib import import_module

from django.db import migrations

counts = import_module("mailboxes.migrations.0037_conversation")
plans = import_module("mailboxes.migrations.0034_message_conversation_head_plans")
MESSAGES, TABLE, COLUMNS = counts.MESSAGES, counts.TABLE, counts.COLUMNS


def sums(rows: str, sign: str) -> str:
    """A transition table's rows as their (signed) contribution to their conversation."""
    return (
        f"SELECT folder_id, thread_key, {sign}1 AS messages,"
        f" {sign}CAST(NOT seen AS integer) AS unseen, {sign}CAST(flagged AS integer) AS flagged,"
        f" {sign}CAST(has_attachments AS integer) AS attachments FROM {rows}"
    )


def apply(parts: str) -> list[str]:
    """The net differences of these contributions, one row per conversation, added to its
    counts (its row made when new), then the rows left at zero removed."""
    net = (
        f"SELECT folder_id, thread_key, sum(messages), sum(unseen), sum(flagged),"
        f" sum(attachments) FROM ({parts}) p WHERE thread_key <> '' GROUP BY folder_id, thread_key"
    )
    return [
        f"INSERT INTO {TABLE} (folder_id, thread_key, {COLUMNS}) {net}"
        " ON CONFLICT (folder_id, thread_key) DO UPDATE SET"
        f" messages = {TABLE}.messages + excluded.messages,"
        f" unseen = {TABLE}.unseen + excluded.unseen,"
        f" flagged = {TABLE}.flagged + excluded.flagged,"
        f" attachments = {TABLE}.attachments + excluded.attachments",
        f"DELETE FROM {TABLE} c USING ({parts}) p WHERE c.folder_id = p.folder_id"
        " AND c.thread_key = p.thread_key AND c.messages = 0",
    ]


# The rows an UPDATE changed as the list counts them (folder, thread_key or a counted flag)
CHANGED = (
    "(SELECT {0}.* FROM old_rows o JOIN new_rows n ON n.id = o.id"
    " WHERE (o.folder_id, o.thread_key, o.seen, o.flagged, o.has_attachments)"
    " IS DISTINCT FROM (n.folder_id, n.thread_key, n.seen, n.flagged, n.has_attachments)) {0}"
)
STATEMENT_TRIGGERS = [
    ("ai", "INSERT", "NEW TABLE AS new_rows", apply(sums("new_rows", ""))),
    ("ad", "DELETE", "OLD TABLE AS old_rows", apply(sums("old_rows", "-"))),
    (
        "au",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        apply(f"{sums(CHANGED.format('n'), '')} UNION ALL {sums(CHANGED.format('o'), '-')}"),
    ),
]
FORWARDS = [
    *counts.POSTGRESQL_DROP,
    *(
        f"CREATE FUNCTION {MESSAGES}_count_{name}() RETURNS trigger SET enable_seqscan = off"
        f" AS $$ BEGIN {'; '.join(steps)}; RETURN NULL; END $$ LANGUAGE plpgsql"
        for name, _, _, steps in STATEMENT_TRIGGERS
    ),
    *(
        f"CREATE TRIGGER {MESSAGES}_count_{name} AFTER {event} ON {MESSAGES}"
        f" REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {MESSAGES}_count_{name}()"
        for name, event, tables, _ in STATEMENT_TRIGGERS
    ),
]
BACKWARDS = [
    *(f"DROP TRIGGER IF EXISTS {MESSAGES}_count_{n} ON {MESSAGES}" for n, *_ in STATEMENT_TRIGGERS),
    *(f"DROP FUNCTION IF EXISTS {MESSAGES}_count_{n}()" for n, *_ in STATEMENT_TRIGGERS),
    *counts.POSTGRESQL_TRIGGERS,
]


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0038_message_folder_thread_uid"),
    ]

    operations = [
        migrations.RunPython(plans.on_postgresql(FORWARDS), plans.on_postgresql(BACKWARDS)),
    ]

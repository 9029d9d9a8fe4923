"""PostgreSQL: the conversation_head triggers (0033) planned so that each statement is one
probe of the (folder, thread_key, uid) index whatever the table's statistics. A session keeps
the plans of a trigger function's statements; planned while the message table was small or
never analyzed (a new server, a bulk load in one transaction), "is there a newer message of
this conversation" (EXISTS) was a scan of message_thread_date (thread_key, internal_date, id),
which reads every message of the conversation: loading 1,500 messages of one conversation into
a new database in one transaction took 2.8 s, growing with the conversation. Now that question
is the conversation's highest UID against the new one's (the backward probe the other
statement already was), and the functions plan with sequential scans off."""

from importlib import import_module

from django.db import migrations

heads = import_module("mailboxes.migrations.0033_message_conversation_head")
TABLE = heads.TABLE
NEWER_THAN_NEW = f"COALESCE({heads.NEWEST.format('NEW', '')}, 0) > NEW.uid"
ADDED = [
    heads.ADDED[0],
    f"UPDATE {TABLE} SET conversation_head = (NEW.thread_key = '' OR NOT {NEWER_THAN_NEW})"
    f" WHERE id = NEW.id AND conversation_head = (NEW.thread_key <> '' AND {NEWER_THAN_NEW})",
]


def functions(added: list[str], settings: str) -> list[str]:
    return [
        f"CREATE OR REPLACE FUNCTION {TABLE}_head_{name}() RETURNS trigger{settings} AS $$ BEGIN"
        f" {'; '.join(steps)}; RETURN NULL; END $$ LANGUAGE plpgsql"
        for name, steps in (
            ("added", added),
            ("removed", heads.REMOVED),
            ("moved", heads.REMOVED + added),
        )
    ]


def on_postgresql(statements: list[str]):  # noqa: ANN201
    def run(apps, schema_editor):  # noqa: ANN001, ANN202
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


FORWARDS = [
    # CREATE OR REPLACE keeps a function's SET clauses only when it names them again
    *functions(ADDED, " SET enable_seqscan = off"),
]
BACKWARDS = [
    *(f"ALTER FUNCTION {TABLE}_head_{n}() RESET ALL" for n in ("added", "removed", "moved")),
    *functions(heads.ADDED, ""),
]


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0033_message_conversation_head"),
    ]

    operations = [migrations.RunPython(on_postgresql(FORWARDS), on_postgresql(BACKWARDS))]

"""PostgreSQL: the Conversation counts' UPDATE statement trigger (0039) returns at once when no
row of the statement changed its folder, thread_key or a counted flag, instead of planning and
running its two statements over nothing. Every UPDATE of the message table fires it, and most
change nothing it counts: the conversation_head triggers' two UPDATEs at each delivery (the
message before the new one, the new one), \\Deleted, \\Answered, keywords, MODSEQ. Backend CPU
of one such UPDATE (a loop of 5,000, four runs each): of one row 116-126 -> 84-96 us (76
without the trigger), of no row 28-30 -> 6-8 us (2); a \\Seen change keeps its cost (683-700
us in one transaction's loop either way)."""

from importlib import import_module

from django.db import migrations

counts = import_module("mailboxes.migrations.0039_conversation_statement_triggers")
plans = import_module("mailboxes.migrations.0034_message_conversation_head_plans")
MESSAGES = counts.MESSAGES
STEPS = {name: steps for name, _, _, steps in counts.STATEMENT_TRIGGERS}["au"]
GUARD = f"IF NOT EXISTS (SELECT FROM {counts.CHANGED.format('n')}) THEN RETURN NULL; END IF"


def function(steps: list[str], trigger: str = "au") -> str:
    """The counts' statement trigger function of `trigger` (au: UPDATE, ai: INSERT)."""
    return (
        f"CREATE OR REPLACE FUNCTION {MESSAGES}_count_{trigger}() RETURNS trigger"
        f" SET enable_seqscan = off AS $$ BEGIN {'; '.join(steps)}; RETURN NULL; END $$"
        " LANGUAGE plpgsql"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0040_message_conversation_head_probes"),
    ]

    operations = [
        migrations.RunPython(
            plans.on_postgresql([function([GUARD, *STEPS])]),
            plans.on_postgresql([function(STEPS)]),
        ),
    ]

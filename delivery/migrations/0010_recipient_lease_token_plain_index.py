"""OutboundRecipient.lease_token keeps one plain index, without the varchar_pattern_ops twin
Django gives an indexed CharField on PostgreSQL (for LIKE 'x%', which no query asks: every
query compares the token whole, and the plain index answers that). Each claim and each result
wrote both. The field's index becomes a Meta index (Django makes no twin for one): on
PostgreSQL the plain index is renamed and the twin dropped; on SQLite, which has no twin and
cannot rename an index, the plain one is made again under its new name. Not by AlterField:
SQLite's schema editor would remake the whole recipient table for it."""

from django.db import migrations, models

TABLE = "delivery_outboundrecipient"
OLD = "delivery_outboundrecipient_lease_token_f2ce787e"
LIKE = OLD + "_like"
NEW = "recipient_lease_token"


def forwards(apps, schema_editor):  # noqa: ANN001, ANN201
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE}")
        schema_editor.execute(f"ALTER INDEX IF EXISTS {OLD} RENAME TO {NEW}")
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {OLD}")
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS {NEW} ON "{TABLE}" ("lease_token")')


def backwards(apps, schema_editor):  # noqa: ANN001, ANN201
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER INDEX IF EXISTS {NEW} RENAME TO {OLD}")
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {LIKE} ON "{TABLE}" ("lease_token" varchar_pattern_ops)'
        )
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {NEW}")
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS {OLD} ON "{TABLE}" ("lease_token")')


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0009_reports_sent_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="outboundrecipient",
                    name="lease_token",
                    field=models.CharField(blank=True, max_length=32),
                ),
                migrations.AddIndex(
                    model_name="outboundrecipient",
                    index=models.Index(fields=["lease_token"], name=NEW),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]

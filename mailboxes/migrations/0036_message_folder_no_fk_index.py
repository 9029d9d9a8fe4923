"""Message.folder without the index Django gives a foreign key: the unique (folder, uid)
constraint's index, and the six others that start with folder_id, answer every query by
folder alone, and each INSERT wrote that index's page too (on SQLite one WAL frame more a
commit). The index is dropped by name rather than by AlterField: SQLite's schema editor
would remake the whole message table for it, and with the table the conversation_head
triggers of migrations 0033 and 0034."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "mailboxes_message_folder_id_088c3253"


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0035_mailbox_quota_messages"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="folder",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="mailboxes.folder",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {INDEX}",
                    f'CREATE INDEX {INDEX} ON "mailboxes_message" ("folder_id")',
                ),
            ],
        ),
    ]

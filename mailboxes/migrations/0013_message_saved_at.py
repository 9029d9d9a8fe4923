"""Message.saved_at for IMAP SAVEDATE (RFC 8514). Rows already stored keep NULL (their save
date is not known: SAVEDATE shows NIL), so the column is added without a default and the
model's default (the time a row is saved) comes after, a change of state only: no table
rewrite, no update of existing rows."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0012_folder_acl"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="saved_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        # A Python-side default: nothing in the database changes (SQLite would otherwise
        # rebuild the message table to "alter" the column).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="saved_at",
                    field=models.DateTimeField(
                        blank=True, default=django.utils.timezone.now, null=True
                    ),
                ),
            ]
        ),
    ]

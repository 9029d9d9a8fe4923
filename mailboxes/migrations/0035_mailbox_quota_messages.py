"""A message-count limit per mailbox (RFC 9208 5.2 MESSAGE), and the count it is held to,
kept beside used_bytes; existing mailboxes start from their folders' message counters."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce


def count_messages(apps, schema_editor):
    Mailbox = apps.get_model("mailboxes", "Mailbox")
    Folder = apps.get_model("mailboxes", "Folder")
    held = (
        Folder.objects.filter(mailbox_id=OuterRef("pk"))
        .values("mailbox_id")
        .annotate(total=Sum("message_count"))
        .values("total")
    )
    Mailbox.objects.update(used_messages=Coalesce(Subquery(held), 0))


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0034_message_conversation_head_plans"),
    ]

    operations = [
        migrations.AddField(
            model_name="mailbox",
            name="quota_messages",
            field=models.BigIntegerField(default=0, help_text="Messages; 0 means no limit."),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="used_messages",
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_messages, migrations.RunPython.noop),
    ]

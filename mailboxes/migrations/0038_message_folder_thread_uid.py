"""The (folder, thread_key, uid) index without seen, flagged and has_attachments: they rode
along (0030) so that the list's summary of a conversation was summed from the index alone,
and Conversation keeps that summary now (0037). On SQLite each change of \\Seen or \\Flagged
rewrote the message's entry in it; PostgreSQL's flag updates were never HOT (seen and flagged
are in other indexes), so there it only makes the index smaller. The new index is made before
the old one goes, so that the conversation_head triggers always probe one. Indexes are made and
dropped on SQLite without remaking the table, so the triggers of 0033 and 0037 stay."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0037_conversation"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                fields=["folder", "thread_key", "uid"], name="message_folder_thread_uid"
            ),
        ),
        migrations.RemoveIndex(model_name="message", name="message_folder_thread_flags"),
    ]

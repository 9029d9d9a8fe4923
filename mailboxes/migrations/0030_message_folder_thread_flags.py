"""The (folder, thread_key, uid) index carries seen, flagged and has_attachments: the
webmail's list sums each conversation on its page (how many, any unread, flagged, with
attachments) from the index alone, without a row lookup per message of the conversation."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0029_fts_words_matching_limit"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                fields=["folder", "thread_key", "uid", "seen", "flagged", "has_attachments"],
                name="message_folder_thread_flags",
            ),
        ),
        migrations.RemoveIndex(model_name="message", name="message_folder_thread"),
    ]

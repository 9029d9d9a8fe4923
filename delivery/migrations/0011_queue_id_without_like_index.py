"""OutboundMessage.queue_id keeps its unique index alone on PostgreSQL, without the
varchar_pattern_ops twin: the admin's search is a LIKE '%x%' of UPPER(queue_id), which no
index answers, and every other query compares the id whole. Every message submitted or
spooled wrote both indexes."""

from django.db import migrations

from mailhost.database import without_like_index


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0010_recipient_lease_token_plain_index"),
    ]

    operations = [without_like_index("delivery_outboundmessage", "queue_id")]

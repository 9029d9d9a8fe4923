"""Subscriptions leave the folder rows: a Subscription per subscribed folder name, so that
a subscription outlives its folder and may name one that does not exist (RFC 9051 6.3.9)."""

import django.db.models.deletion
from django.db import migrations, models


def folders_to_subscriptions(apps, schema_editor):
    Folder = apps.get_model("mailboxes", "Folder")
    Subscription = apps.get_model("mailboxes", "Subscription")
    rows = Folder.objects.filter(subscribed=True).values_list("mailbox_id", "name")
    batch = [Subscription(mailbox_id=mailbox_id, name=name) for mailbox_id, name in rows]
    Subscription.objects.bulk_create(batch, batch_size=1000)


def subscriptions_to_folders(apps, schema_editor):
    Folder = apps.get_model("mailboxes", "Folder")
    Subscription = apps.get_model("mailboxes", "Subscription")
    Folder.objects.update(subscribed=False)
    for mailbox_id, name in Subscription.objects.values_list("mailbox_id", "name"):
        Folder.objects.filter(mailbox_id=mailbox_id, name=name).update(subscribed=True)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0009_merge_sieve_scripts_sender_list_pattern"),
    ]

    operations = [
        migrations.CreateModel(
            name="Subscription",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=512)),
                (
                    "mailbox",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="subscriptions",
                        to="mailboxes.mailbox",
                    ),
                ),
            ],
            options={
                "ordering": ["mailbox", "name"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("mailbox", "name"), name="subscription_unique_name"
                    )
                ],
            },
        ),
        migrations.RunPython(folders_to_subscriptions, subscriptions_to_folders),
        migrations.RemoveField(
            model_name="folder",
            name="subscribed",
        ),
    ]

"""DKIM keys per domain (issue 18, key rotation): a DkimKey table; each domain's key and
selector move into it as the domain's active key, then leave the Domain table."""

import django.db.models.deletion
from django.db import migrations, models


def keys_to_table(apps, schema_editor):
    Domain = apps.get_model("mailboxes", "Domain")
    DkimKey = apps.get_model("mailboxes", "DkimKey")
    for domain in Domain.objects.exclude(dkim_private_key="").iterator():
        DkimKey.objects.create(
            domain=domain,
            selector=domain.dkim_selector,
            algorithm="rsa",
            private_key=domain.dkim_private_key,
            state="active",
            activated_at=domain.created_at,
        )


def keys_to_domains(apps, schema_editor):
    """Back: the active RSA key of each domain (other keys and ed25519 have no place there)."""
    DkimKey = apps.get_model("mailboxes", "DkimKey")
    for key in DkimKey.objects.filter(state="active", algorithm="rsa").select_related("domain"):
        key.domain.dkim_selector = key.selector
        key.domain.dkim_private_key = key.private_key
        key.domain.save(update_fields=["dkim_selector", "dkim_private_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0004_blob_data"),
    ]

    operations = [
        migrations.CreateModel(
            name="DkimKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("selector", models.CharField(max_length=63)),
                (
                    "algorithm",
                    models.CharField(
                        choices=[("rsa", "Rsa"), ("ed25519", "Ed25519")],
                        default="rsa",
                        max_length=10,
                    ),
                ),
                (
                    "private_key",
                    models.TextField(blank=True, help_text="PEM; erased when retired."),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("published", "Published"),
                            ("active", "Active"),
                            ("retired", "Retired"),
                        ],
                        default="published",
                        max_length=10,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("activated_at", models.DateTimeField(blank=True, null=True)),
                (
                    "domain",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="dkim_keys",
                        to="mailboxes.domain",
                    ),
                ),
            ],
            options={
                "ordering": ["domain", "created_at", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("domain", "selector"), name="dkim_selector_unique"
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("state", "active")),
                        fields=("domain",),
                        name="dkim_one_active_key",
                    ),
                ],
            },
        ),
        migrations.RunPython(keys_to_table, keys_to_domains),
        migrations.RemoveField(model_name="domain", name="dkim_private_key"),
        migrations.RemoveField(model_name="domain", name="dkim_selector"),
    ]

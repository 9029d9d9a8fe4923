"""Migration 0010: OutboundRecipient.lease_token has one plain index on both databases, and
on PostgreSQL no varchar_pattern_ops twin (written at every claim and result, read by no
query); undone backwards, the field's own index (and on PostgreSQL its twin) come back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from delivery.models import OutboundRecipient

# Each test leaves the schema at its AFTER: the newest migrations again after it.
pytestmark = pytest.mark.usefixtures("latest_schema")
TABLE = OutboundRecipient._meta.db_table
BEFORE = [("delivery", "0009_reports_sent_name")]
AFTER = [("delivery", "0010_recipient_lease_token_plain_index")]
OLD = "delivery_outboundrecipient_lease_token_f2ce787e"


def token_indexes() -> list[str]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, TABLE)
    return sorted(
        name for name, spec in found.items() if spec["index"] and spec["columns"] == ["lease_token"]
    )


@pytest.mark.django_db(transaction=True)
def test_the_token_has_one_plain_index_and_backwards_the_fields_own():
    assert token_indexes() == ["recipient_lease_token"]
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        twin = [OLD + "_like"] if connection.vendor == "postgresql" else []
        assert token_indexes() == sorted([OLD, *twin])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
    assert token_indexes() == ["recipient_lease_token"]

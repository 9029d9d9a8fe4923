"""mailboxes 0048 and delivery 0011: Blob.name and OutboundMessage.queue_id, written for every
message, keep their unique index alone on PostgreSQL, without the varchar_pattern_ops twin
that no query reads; backwards, the twin comes back. SQLite never had one."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from delivery.models import OutboundMessage
from mailboxes.models import Blob

# Each test leaves the schema at the newest migrations again.
pytestmark = pytest.mark.usefixtures("latest_schema")
FIELDS = [
    (Blob, "name", ("mailboxes", "0047_fts_body_vocabulary_postgresql")),
    (OutboundMessage, "queue_id", ("delivery", "0010_recipient_lease_token_plain_index")),
]
AFTER = [
    ("mailboxes", "0048_blob_name_without_like_index"),
    ("delivery", "0011_queue_id_without_like_index"),
]


def indexes_of(model, column: str) -> dict[str, bool]:  # noqa: ANN001
    """The column's indexes: by name, whether unique."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {
        name: spec["unique"]
        for name, spec in found.items()
        if spec["index"] or spec["unique"]
        if spec["columns"] == [column]
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("model", "column", "before"), FIELDS)
def test_the_unique_name_has_its_unique_index_alone(model, column, before):
    assert list(indexes_of(model, column).values()) == [True]
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        twins = [name for name, unique in indexes_of(model, column).items() if not unique]
        if connection.vendor == "postgresql":
            assert len(twins) == 1 and twins[0].endswith("_like"), twins
        else:
            assert twins == []
    finally:
        MigrationExecutor(connection).migrate(AFTER)
    assert list(indexes_of(model, column).values()) == [True]

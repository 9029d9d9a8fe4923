"""On PostgreSQL: a delivery claim's transaction in three round trips (its BEGIN with the SET
LOCAL of an unsynced transaction, the UPDATE with the SELECT of what it took, the COMMIT),
where psycopg made five; on SQLite the same claim, the statements run in turn."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from delivery import services
from delivery.models import OutboundRecipient
from mailboxes.transactions import unsynced_atomic
from tests.delivery.test_delivery import spool
from tests.mailhost.test_prepared_statements import traced

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="psycopg's round trips"
)


@postgresql_only
def test_an_unsynced_transaction_sends_its_set_local_with_its_begin(tmp_path):
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()

    def unsynced() -> None:
        with unsynced_atomic(), db.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("off",)

    trips = traced(db, unsynced, tmp_path / "trace")
    assert any('"BEGIN"' in m for m in trips[0])
    assert any("SET LOCAL synchronous_commit = off" in m for m in trips[0])
    assert len(trips) == 3  # BEGIN with the SET LOCAL, the SHOW, the COMMIT
    with db.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
    assert db.connection.autocommit and not db.in_atomic_block


@postgresql_only
def test_a_claim_is_three_round_trips(make_mailbox, tmp_path):
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test", "carol@remote.test"])
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    claims = []
    trips = traced(
        db,
        lambda: claims.extend(services.recipients_claim_many(message_ids=[message.pk])),
        tmp_path / "trace",
    )
    assert len(trips) == 3, trips
    assert any('"COMMIT"' in m for m in trips[2])
    [claim] = claims
    assert sorted(r.address for r in claim.recipients) == ["bob@remote.test", "carol@remote.test"]
    held = OutboundRecipient.objects.filter(message=message, lease_token=claim.token)
    assert held.count() == 2


def test_a_claim_takes_what_is_due_once(make_mailbox):
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test"])
    [claim] = services.recipients_claim_many(message_ids=[message.pk])
    assert [r.address for r in claim.recipients] == ["bob@remote.test"]
    assert claim.message.blob.size > 0
    assert services.recipients_claim_many(message_ids=[message.pk]) == []  # leased

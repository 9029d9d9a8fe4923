"""On PostgreSQL: a delivery claim's transaction in two round trips (its BEGIN with the SET
LOCAL of an unsynced transaction, the UPDATE and the SELECT of what it took; the COMMIT),
where psycopg made five; on SQLite the same claim, the statements run in turn."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from delivery import services
from delivery.models import OutboundMessage, OutboundRecipient
from mailboxes.models import Blob
from mailboxes.selectors import blob_read
from mailboxes.transactions import unsynced_atomic
from tests.delivery.test_delivery import RAW, spool
from tests.mailhost.test_prepared_statements import prepared, traced, uses

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
def test_an_unsynced_transaction_of_statements_together_sends_its_begin_with_them(tmp_path):
    """BEGIN, SET LOCAL and the first statements made together in one round trip (a claim,
    the results of a delivery), where the BEGIN and the SET LOCAL were one of their own."""
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()

    def unsynced() -> None:
        with unsynced_atomic(statements_together=True), db.cursor() as cursor:
            with db.statements_together():
                cursor.execute("SELECT 1")
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("off",)

    trips = traced(db, unsynced, tmp_path / "trace")
    assert any('"BEGIN"' in m for m in trips[0])
    assert any("SET LOCAL synchronous_commit = off" in m for m in trips[0])
    assert any("SELECT 1" in m for m in trips[0])
    assert len(trips) == 3  # BEGIN with the SET LOCAL and the SELECT, the SHOW, the COMMIT
    with db.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)
    assert db.connection.autocommit and not db.in_atomic_block


@postgresql_only
def test_an_unsynced_transaction_whose_statements_go_alone_still_commits_unsynced(tmp_path):
    """Asked for statements together that never come, the SET LOCAL goes before the COMMIT,
    the one statement it must precede."""
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    settings_seen = []

    def unsynced() -> None:
        with unsynced_atomic(statements_together=True), db.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            settings_seen.append(cursor.fetchone())

    trips = traced(db, unsynced, tmp_path / "trace")
    assert settings_seen == [("on",)]
    assert any("SET LOCAL synchronous_commit = off" in m for m in trips[-2])
    assert any('"COMMIT"' in m for m in trips[-1])
    with db.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone() == ("on",)


@postgresql_only
def test_an_unsynced_transaction_that_fails_rolls_back_without_its_set_local(tmp_path):
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()

    def failing() -> None:
        with (
            pytest.raises(RuntimeError),
            unsynced_atomic(statements_together=True),
            db.cursor() as cursor,
        ):
            cursor.execute("SELECT 1")
            raise RuntimeError("the block's own failure")

    sent = [m for trip in traced(db, failing, tmp_path / "trace") for m in trip]
    assert not any("SET LOCAL" in m for m in sent)
    assert any('"ROLLBACK"' in m for m in sent)
    assert db.connection.autocommit and not db.in_atomic_block


@postgresql_only
def test_a_claim_is_two_round_trips(make_mailbox, tmp_path):
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
    assert len(trips) == 2, trips  # 3 before: the BEGIN and the SET LOCAL went alone
    assert any("SET LOCAL" in m for m in trips[0]) and any("UPDATE" in m for m in trips[0])
    assert any('"COMMIT"' in m for m in trips[1])
    [claim] = claims
    assert sorted(r.address for r in claim.recipients) == ["bob@remote.test", "carol@remote.test"]
    held = OutboundRecipient.objects.filter(message=message, lease_token=claim.token)
    assert held.count() == 2


def test_a_claims_rows_equal_what_the_orm_reads(make_mailbox):
    """On PostgreSQL the claim's SELECT reads its rows in the binary format (the blob's bytes
    as they are, not hex text): every field of its recipients, message and blob is the value,
    of the same type, that the ORM reads."""
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test", "carol@remote.test"], ret="HDRS", envid="e-1")
    [claim] = services.recipients_claim_many(message_ids=[message.pk])

    def fields(row) -> dict:
        values = {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}
        return {name: (type(value), value) for name, value in values.items()}

    assert fields(claim.message) == fields(OutboundMessage.objects.get(pk=message.pk))
    assert fields(claim.message.blob) == fields(Blob.objects.get(pk=message.blob_id))
    for row in claim.recipients:
        assert fields(row) == fields(OutboundRecipient.objects.get(pk=row.pk))
    assert blob_read(claim.message.blob) == RAW


def test_a_claim_takes_what_is_due_once(make_mailbox):
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test"])
    [claim] = services.recipients_claim_many(message_ids=[message.pk])
    assert [r.address for r in claim.recipients] == ["bob@remote.test"]
    assert claim.message.blob.size > 0
    assert services.recipients_claim_many(message_ids=[message.pk]) == []  # leased


@postgresql_only
def test_a_claims_results_are_written_in_two_round_trips(make_mailbox, tmp_path):
    """Its BEGIN with the SET LOCAL and the UPDATE of each recipient, sent together; the
    COMMIT (before: one round trip a recipient, and the BEGIN and the SET LOCAL apart)."""
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test", "carol@remote.test", "dave@remote.test"])
    [claim] = services.recipients_claim_many(message_ids=[message.pk])
    outcomes = {
        r.id: services.Outcome(status="delivered", reply="250 2.0.0 ok", remote="mx.remote.test")
        for r in claim.recipients
    }
    db = connections[DEFAULT_DB_ALIAS]
    written = []
    trips = traced(
        db,
        lambda: written.append(
            services.recipients_record(
                token=claim.token, outcomes=outcomes, claimed=claim.recipients
            )
        ),
        tmp_path / "trace",
    )
    assert written == [3]
    assert len(trips) == 2, trips
    # BEGIN, the SET LOCAL and the three UPDATEs
    assert sum(m.split("\t")[2] == "Execute" for m in trips[0]) == 5
    assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {"delivered"}


@postgresql_only
def test_the_claims_and_the_results_statements_are_prepared(make_mailbox):
    """Bound by the server and prepared once a connection: PostgreSQL parsed and planned
    each claim's UPDATE and SELECT and each result's UPDATE afresh (a delivered message's
    backend CPU in its claim and its result: about 0.9-1.3 -> 0.55-0.6 ms)."""
    make_mailbox("alice@example.org")
    ok = services.Outcome(status="delivered", reply="250 2.0.0 ok", remote="mx.remote.test")
    for _ in range(2):
        message = spool(["bob@remote.test", "carol@remote.test"])
        [claim] = services.recipients_claim_many(message_ids=[message.pk])
        services.recipients_record(token=claim.token, outcomes={r.id: ok for r in claim.recipients})
    statements = prepared()
    table = '"delivery_outboundrecipient"'
    assert uses(statements, f"UPDATE {table} SET lease_token = $1") == [2]
    assert uses(statements, "ORDER BY r.message_id, r.id") == [2]
    assert uses(statements, f"UPDATE {table} SET status = $1") == [4]
    assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {"delivered"}


def test_results_written_are_counted_and_only_under_the_claim(make_mailbox):
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test", "carol@remote.test"])
    [claim] = services.recipients_claim_many(message_ids=[message.pk])
    bob, carol = sorted(claim.recipients, key=lambda r: r.address)
    ok = services.Outcome(status="delivered", reply="250 2.0.0 ok", remote="mx.remote.test")
    OutboundRecipient.objects.filter(pk=carol.pk).update(lease_token="someone-else")
    written = services.recipients_record(
        token=claim.token, outcomes={bob.id: ok, carol.id: ok}, claimed=claim.recipients
    )
    assert written == 1
    assert OutboundRecipient.objects.get(pk=bob.pk).status == "delivered"
    assert OutboundRecipient.objects.get(pk=carol.pk).status != "delivered"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query planner")
@pytest.mark.parametrize("count", [1, 8])
def test_a_claim_finds_its_recipients_by_message_not_by_the_whole_due_spool(count):
    """SQLite keeps no statistics here: offered the (status, next_attempt_at) index for the
    claim's UPDATE, it took it, and each claim read every due recipient of the spool (37 ms a
    claim with 100,000 due, against 0.02 through message_id's index)."""
    update, _ = services._claim_sql(count)
    params = ["token", None, None, *range(1, count + 1), *services.PENDING, None, None]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {update}", params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "recipient_due" not in plan
    assert "(message_id=?)" in plan, plan

"""A submission to remote recipients: its transaction on PostgreSQL is three round trips (the
BEGIN with the blob's row, the spool's rows in one prepared statement, the synced COMMIT),
where the message's row and its recipients' were a round trip each; on both databases the
spool holds what was submitted."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from delivery import accept
from delivery.models import OutboundMessage
from tests.mailhost.test_prepared_statements import prepared, traced, uses

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="psycopg's round trips"
)
RAW = b"From: alice@example.org\r\nTo: bob@remote.test\r\nSubject: hi\r\n\r\nHi.\r\n"


def submit(alice, recipients) -> str:  # noqa: ANN001
    result = accept.message_accept(
        raw=RAW,
        mail_from="alice@example.org",
        recipients=[
            accept.EnvelopeRecipient(address, notify="SUCCESS", orcpt=f"rfc822;{address}")
            for address in recipients
        ],
        authenticated_mailbox=alice,
        envid="env-1",
        ret="HDRS",
    )
    assert result.spooled and [r.status for r in result.recipients] == ["queued"] * len(recipients)
    return result.queue_id


def test_a_submission_spools_its_message_and_every_recipient(make_mailbox):
    alice = make_mailbox("alice@example.org")
    for recipients in (["bob@remote.test"], ["bob@remote.test", "carol@other.test"]):
        queue_id = submit(alice, recipients)
        message = OutboundMessage.objects.get(queue_id=queue_id)
        assert (message.mail_from, message.sender_mailbox, message.envid, message.ret) == (
            "alice@example.org",
            alice,
            "env-1",
            "HDRS",
        )
        assert message.size == message.blob.size
        rows = message.recipients.order_by("address")
        assert [(r.address, r.notify, r.orcpt, r.status) for r in rows] == [
            (address, "SUCCESS", f"rfc822;{address}", "queued") for address in recipients
        ]
        assert all(r.next_attempt_at == message.created_at for r in rows)


@postgresql_only
def test_a_submissions_transaction_is_three_round_trips(make_mailbox, tmp_path):
    alice = make_mailbox("alice@example.org")
    submit(alice, ["bob@remote.test"])
    db = connections[DEFAULT_DB_ALIAS]
    trips = traced(db, lambda: submit(alice, ["bob@remote.test"]), tmp_path / "trace")
    begin = next(n for n, trip in enumerate(trips) if any('"BEGIN"' in m for m in trip))
    commit = next(n for n, trip in enumerate(trips) if any('"COMMIT"' in m for m in trip))
    assert commit - begin == 2, trips[begin:]  # before: 3, the spool's two INSERTs apart
    # The spool's statement is prepared: bound by name, its text parsed once a connection.
    spooled = trips[begin + 1]
    assert [m.split("\t")[2] for m in spooled] == ["Bind", "Describe", "Execute", "Sync"]
    assert uses(prepared(), "WITH message AS (INSERT INTO") == [2]

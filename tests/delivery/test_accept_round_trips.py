"""On PostgreSQL: port 25's reads before the transaction, what the spam verdict reads of the
recipient's mailbox (its sender lists, its classifier's totals and known senders) and the
Sieve scripts it runs, are sent together, one round trip where there were three."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from mailboxes.services import sender_list_add
from tests.mailhost.test_prepared_statements import deliver, traced

pytestmark = pytest.mark.django_db(transaction=True)

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="psycopg's round trips"
)


@postgresql_only
def test_a_port_25_message_is_five_round_trips(make_mailbox, tmp_path):
    make_mailbox("alice@example.org")
    deliver()  # each statement prepared on its first use (a Parse of its own)
    db = connections[DEFAULT_DB_ALIAS]
    trips = traced(db, deliver, tmp_path / "trace")
    # RCPT's lookup; the verdict's two reads and the scripts'; BEGIN with the blob row and
    # the mailbox's lock; the filing; the COMMIT.
    assert len(trips) == 5, trips
    reads = [m for m in trips[1] if "\tBind\t" in m]
    assert len(reads) == 3, trips[1]


def test_the_reads_together_answer_as_apart(make_mailbox):
    from delivery import spam
    from mailboxes import mda

    alice = make_mailbox("alice@example.org")
    sender_list_add(mailbox=alice, pattern="friend@remote.example", action="allow")
    facts, (scripts,) = spam.sender_facts(
        [alice.pk], "friend@remote.example", mda.scripts_read([alice.pk])
    )
    assert facts.lists == {alice.pk: "allow"} and facts.known == set()
    assert scripts == mda.scripts_read([alice.pk]).run() == []

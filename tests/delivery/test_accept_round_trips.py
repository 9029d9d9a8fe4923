"""On PostgreSQL: port 25's reads before the transaction, what the spam verdict reads of the
recipient's mailbox (its sender lists, its classifier's totals and known senders) and the
Sieve scripts it runs, are sent together, one round trip where there were three, and one
statement (plainsql.selects_together) where there were three in a pipeline; on SQLite one
statement where there were three."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from mailboxes.services import sender_list_add, sievescript_put
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
    assert len(reads) == 1 and "ARRAY(SELECT ROW(q.*)" in "".join(trips[1]) + _texts(db), trips


def _texts(db) -> str:  # noqa: ANN001
    """The texts of the statements the connection has prepared (a Bind names one, not its
    text)."""
    with db.connection.cursor() as cursor:
        return " ".join(
            row[0] for row in cursor.execute("SELECT statement FROM pg_prepared_statements")
        )


def test_the_reads_together_answer_as_apart(make_mailbox):
    from delivery import spam
    from delivery.spam import selectors
    from mailboxes import mda

    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    sender_list_add(mailbox=alice, pattern="friend@remote.example", action="allow")
    sender_list_add(mailbox=bob, pattern="@remote.example", action="block")
    sievescript_put(mailbox=bob, name="main", text="keep;", activate=True)
    ids = [alice.pk, bob.pk]
    facts, (scripts,) = spam.sender_facts(ids, "friend@remote.example", mda.scripts_read(ids))
    assert facts.lists == {alice.pk: "allow", bob.pk: "block"} and facts.known == set()
    assert scripts == mda.scripts_read(ids).run() and len(scripts) == 1
    apart = selectors.sender_list_verdicts(ids, "friend@remote.example")
    assert facts.lists == apart
    assert (facts.totals, facts.known) == selectors.mailbox_facts(ids, "friend@remote.example")


def test_the_reads_together_are_one_statement_and_answer_as_apart(make_mailbox):
    """Two mailboxes, each with rows in every read (a list entry, classifier totals, a known
    sender, an active script): the answers of the reads together equal each read's alone,
    and they are one statement (on SQLite a compound SELECT)."""
    from delivery.models import SpamToken
    from delivery.spam import selectors as spam_selectors
    from delivery.spam.classifier import Totals
    from delivery.spam.services import known_senders_add
    from mailboxes import mda
    from mailhost.plainsql import selects_together

    alice = make_mailbox("alice@example.org")
    bob = make_mailbox("bob@example.org")
    sender = "friend@remote.example"
    sender_list_add(mailbox=alice, pattern=sender, action="allow")
    sender_list_add(mailbox=bob, pattern="@remote.example", action="block")
    SpamToken.objects.create(mailbox=alice, token=spam_selectors.TOTALS_TOKEN, spam=3, ham=7)
    known_senders_add(mailbox_id=bob.pk, addresses=[sender], source="wrote_to")
    sievescript_put(mailbox=bob, name="keep", text="keep;\n", activate=True)
    ids = [alice.pk, bob.pk]
    reads = [
        spam_selectors.sender_list_verdicts_read(ids, sender),
        spam_selectors.mailbox_facts_read(ids, sender),
        mda.scripts_read(ids),
    ]
    statements: list[str] = []

    def record(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        together = selects_together(reads)
    apart = [read.run() for read in reads]
    assert together == apart
    assert together[0] == {alice.pk: "allow", bob.pk: "block"}
    assert together[1][0][alice.pk] == Totals(3, 7) and together[1][1] == {bob.pk}
    assert [m.id for m in together[2]] == [bob.pk]
    assert len(statements) == 1

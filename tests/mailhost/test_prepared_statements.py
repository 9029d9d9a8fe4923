"""mailhost/postgresql: port 25's plain statements are prepared once per connection and then
only executed (PostgreSQL parsed and planned each one afresh, most of its CPU a message);
errors through a prepared cursor are Django's, and the ORM's statements are left as they were.
On SQLite prepared_cursor() is the ordinary cursor."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, connections, transaction

from delivery import accept
from mailboxes.models import Folder, Message

RAW = b"From: a@remote.example\r\nTo: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n"


def deliver(address: str = "alice@example.org") -> None:
    _, resolution = accept.recipient_verdict(address, relay_allowed=False, size=len(RAW))
    result = accept.message_accept(
        raw=RAW,
        mail_from="a@remote.example",
        recipients=[accept.EnvelopeRecipient(address, resolution=resolution)],
        client=accept.ClientInfo(helo="client.example", ip="192.0.2.1"),
    )
    assert result.accepted, result


def prepared() -> dict[str, int]:
    """This connection's prepared statements: text -> times executed (PostgreSQL 14+)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return dict(cursor.fetchall())


def uses(statements: dict[str, int], part: str) -> list[int]:
    """Executions of the statements that start with `part` (or, for a FROM clause, end with
    it)."""
    return [n for text, n in statements.items() if text.startswith(part) or text.endswith(part)]


postgresql_only = pytest.mark.skipif(
    connections[DEFAULT_DB_ALIAS].vendor != "postgresql", reason="PostgreSQL's prepared statements"
)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_accept_path_prepares_each_statement_once_and_reuses_it(make_mailbox):
    make_mailbox("alice@example.org")
    for _ in range(3):
        deliver()
    statements = prepared()
    for part in (
        "SELECT d.id, d.case_sensitive_local_parts",  # RCPT's recipient lookup
        # the blob row and the mailbox's read, one statement
        'WITH b AS (INSERT INTO "mailboxes_blob"',
        'WITH u AS (UPDATE "mailboxes_mailbox" SET used_bytes',  # locked, and the rest
    ):
        assert uses(statements, part) == [3], (part, statements)
    assert Message.objects.filter(folder__name="INBOX").count() == 3
    # The ORM's statements are bound on the client and never prepared.
    assert not uses(statements, 'SELECT "mailboxes_domain"')


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_error_in_a_prepared_statement_is_djangos_and_the_connection_goes_on(make_mailbox):
    make_mailbox("alice@example.org")
    deliver()
    db = connections[DEFAULT_DB_ALIAS]
    inbox = Folder.objects.get(name="INBOX")
    with pytest.raises(IntegrityError):
        with transaction.atomic(), db.prepared_cursor() as cursor:
            # A second row with the first's UID (message_unique_uid).
            cursor.execute(
                'INSERT INTO "mailboxes_message" (folder_id, uid, modseq, blob_id, size,'
                " internal_date, seen, answered, flagged, deleted, draft, keywords, subject,"
                " from_display, from_address, to_display, cc_display, message_id,"
                ' in_reply_to, "references", thread_key, has_attachments, preview)'
                " SELECT folder_id, uid, modseq, blob_id, size, internal_date, seen, answered,"
                " flagged, deleted, draft, keywords, subject, from_display, from_address,"
                ' to_display, cc_display, message_id, in_reply_to, "references", thread_key,'
                ' has_attachments, preview FROM "mailboxes_message" WHERE folder_id = %s',
                [inbox.pk],
            )
    # psycopg deallocates a connection's statements at a rollback; they are prepared again.
    deliver()
    deliver()
    assert sorted(Message.objects.filter(folder=inbox).values_list("uid", flat=True)) == [1, 2, 3]
    assert uses(prepared(), 'WITH u AS (UPDATE "mailboxes_mailbox"') == [2]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_port_25_files_a_message_in_its_transaction_in_two_statements(make_mailbox):
    """Inside the transaction (whose rows every other delivery to the mailbox waits on) a
    message costs its blob row with the mailbox's read (one statement) and one statement that
    locks it, checks its quota, takes the folder's UID, inserts the message and adds to the
    mailbox's usage: two round trips, not five, and the mailbox locked in the last before the
    COMMIT."""
    box = make_mailbox("alice@example.org")
    deliver()
    db = connections[DEFAULT_DB_ALIAS]
    statements: list[str] = []

    def seen(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        if db.in_atomic_block:
            statements.append(sql.split()[0])
        return execute(sql, params, many, context)

    with db.execute_wrapper(seen):
        deliver()
    assert statements == ["WITH", "WITH"]
    inbox = Folder.objects.get(mailbox=box, name="INBOX")
    assert (inbox.uidnext, inbox.message_count, inbox.unseen_count) == (3, 2, 2)
    stored = sum(Message.objects.filter(folder=inbox).values_list("size", flat=True))
    assert inbox.total_size == stored
    box.refresh_from_db()
    assert (box.used_bytes, box.used_messages) == (stored, 2)
    assert list(Message.objects.filter(folder=inbox).values_list("uid", "modseq")) == [
        (1, inbox.highestmodseq - 1),
        (2, inbox.highestmodseq),
    ]


@pytest.mark.django_db(transaction=True)
def test_prepared_cursor_reads_and_writes_as_the_ordinary_cursor(make_mailbox):
    box = make_mailbox("alice@example.org")
    db = connections[DEFAULT_DB_ALIAS]
    sql = 'SELECT id, quota, used_bytes FROM "mailboxes_mailbox" WHERE id = %s AND active = %s'
    with db.cursor() as plain, db.prepared_cursor() as ready:
        plain.execute(sql, [box.pk, True])
        ready.execute(sql, [box.pk, True])
        assert ready.fetchall() == plain.fetchall() == [(box.pk, box.quota, 0)]
        ready.execute(
            'UPDATE "mailboxes_mailbox" SET used_bytes = used_bytes + %s WHERE id = %s',
            [70000, box.pk],  # past int2: the parameter's type differs from the last call's
        )
        assert ready.rowcount == 1
        ready.execute(sql, [box.pk, True])
        assert ready.fetchone() == (box.pk, box.quota, 70000)


def traced(db, fn, path) -> list[list[str]]:  # noqa: ANN001
    """fn() with the connection's protocol traced by libpq (PQtrace): the round trips, each
    the messages the client sent (F) before it read the server's reply (B)."""
    from psycopg import pq

    with open(path, "w") as trace:
        db.connection.pgconn.trace(trace.fileno())
        db.connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            fn()
        finally:
            db.connection.pgconn.untrace()
    trips: list[list[str]] = []
    sending = False
    for line in path.read_text().splitlines():
        if line.startswith("F"):
            if not sending:
                trips.append([])
            trips[-1].append(line)
        sending = line.startswith("F")
    return trips


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_port_25s_transaction_sends_its_begin_with_its_first_statements(make_mailbox, tmp_path):
    """psycopg sends BEGIN alone and waits for it: a round trip before the blob row's INSERT
    (92f24ae: 4 -> 3 round trips before the COMMIT for a lone message), and the mailbox's lock
    went after the INSERT's reply (3 -> 2)."""
    make_mailbox("alice@example.org")
    deliver()
    db = connections[DEFAULT_DB_ALIAS]
    trips = traced(db, deliver, tmp_path / "trace")
    begin = next(n for n, trip in enumerate(trips) if any('"BEGIN"' in m for m in trip))
    commit = next(n for n, trip in enumerate(trips) if any('"COMMIT"' in m for m in trip))
    # BEGIN, and the blob row's INSERT with the mailbox's read in one statement (prepared: a
    # Bind of its name, with the blob's inline name, INBOX and \Junk).
    binds = [m for m in trips[begin] if m.split("\t")[2] == "Bind"]
    assert len(binds) == 2 and sum("Execute" in m for m in trips[begin]) == 2
    assert "inline:" in binds[1] and "'INBOX'" in binds[1]
    assert commit - begin == 2  # BEGIN, the blob row and the mailbox's read; the filing
    assert Message.objects.filter(folder__name="INBOX").count() == 2
    assert db.connection.autocommit and not db.in_atomic_block


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_failing_first_statement_with_its_begin_rolls_back(make_mailbox):
    from mailboxes.groupcommit import _commit_transaction
    from mailboxes.models import Blob

    make_mailbox("alice@example.org")
    db = connections[DEFAULT_DB_ALIAS]

    def fails() -> None:
        with db.prepared_cursor() as cursor, db.statements_together():
            cursor.execute('SELECT 1 FROM "mailboxes_blob" WHERE id = 1 / %s', [0])

    with pytest.raises(DataError):
        _commit_transaction(fails)
    assert db.connection.autocommit and db.connection.info.transaction_status == 0
    deliver()  # the connection goes on
    assert Blob.objects.count() == 1


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_is_logged_with_its_text():
    """Django's debug cursor (DEBUG, CaptureQueriesContext) logged None for a statement that
    psycopg ran prepared: it sends the statement's name, and keeps no text of it."""
    from django.test.utils import CaptureQueriesContext

    db = connections[DEFAULT_DB_ALIAS]
    with CaptureQueriesContext(db) as queries:
        for together in (False, True):
            with db.prepared_cursor() as cursor:
                with db.statements_together() if together else transaction.atomic():
                    cursor.execute("SELECT %s + 1", [41])
                assert cursor.fetchone() == (42,)
    statements = [q["sql"] for q in queries.captured_queries]
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["SELECT %s + 1"] * 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_closed_prepared_cursor_is_the_next_one_and_forgets_its_results():
    """A prepared cursor closed outside a pipeline is handed out again with its wrapper
    (making them cost as much as executing the statement), without its last results; one still open is never
    handed out twice, one closed in a pipeline (its results may still be on their way) ends,
    and a new connection makes its own."""
    from django.db import ProgrammingError

    db = connections[DEFAULT_DB_ALIAS]
    with db.prepared_cursor() as first:
        first.execute("SELECT %s + 1", [1])
        with db.prepared_cursor() as nested:  # the first is still in use
            assert nested.cursor is not first.cursor
            nested.execute("SELECT %s + 2", [1])
            assert nested.fetchone() == (3,)
        assert first.fetchone() == (2,)
    # the nested one, closed first, is kept; the first, closed with a spare kept, ends
    assert db._spare_cursor is nested.cursor and first.cursor.closed
    with db.prepared_cursor(binary=True) as again:
        assert again is nested and again.cursor is nested.cursor  # its wrapper too
        with pytest.raises(ProgrammingError):  # no result: the last one was dropped
            again.fetchone()
        again.execute("SELECT %s::bytea", [b"\x00\xff"])
        assert again.fetchone() == (b"\x00\xff",)
    with db.prepared_cursor() as text:
        text.execute("SELECT %s::bytea", [b"\x00\xff"])
        assert text.fetchone() == (b"\x00\xff",)
    assert db._spare_cursor is text.cursor
    with db.statements_together():
        inside = db.prepared_cursor()
        assert inside.cursor is text.cursor
        inside.execute("SELECT %s + 3", [1])
        inside.close()  # in the pipeline: ends
    assert inside.cursor.closed and db._spare_cursor is None
    db.close()
    with db.prepared_cursor() as fresh:
        assert fresh.cursor is not text.cursor
        fresh.execute("SELECT %s + 4", [1])
        assert fresh.fetchone() == (5,)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_prepared_cursor_closed_twice_is_kept_alive():
    """close() a second time is a no-op (DB-API), also for the cursor kept as the spare:
    ending it there made the next prepared_cursor() hand out a closed cursor, whose
    statement failed (InterfaceError: the cursor is closed)."""
    db = connections[DEFAULT_DB_ALIAS]
    cursor = db.prepared_cursor()
    cursor.execute("SELECT %s + 1", [1])
    cursor.close()
    cursor.close()
    with db.prepared_cursor() as again:
        assert again.cursor is cursor.cursor
        again.execute("SELECT %s + 1", [2])
        assert again.fetchone() == (3,)

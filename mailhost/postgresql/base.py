"""Django's PostgreSQL backend with mailhost.dbcursor's cursor wrapper (its attributes named,
not found by __getattr__ after a failed lookup), and prepared statements for the hot paths.

Django binds parameters on the client (psycopg's ClientCursor: each value quoted into the
statement's text), so PostgreSQL parses and plans every statement afresh: port 25's eleven
statements a message cost its backend 2.4-2.9 ms of CPU, most of it parse and plan, and
psycopg as much again in Python quoting them (the message's bytes among them). A hot path's
plain statement asks for `prepared_cursor()` instead: its parameters travel apart from the
text (bytes as binary), and the statement is prepared on its first run in a connection and
only executed after (psycopg keeps the names, at most `prepared_max` a connection, the least
used deallocated). bench/profile_accept.py (RCPT verdict and accept of one message):
2.4-2.9 -> 1.3-1.4 ms of backend CPU, 3.5-3.9 -> 3.1 ms in Python. Everything else (the
ORM, Django's server-side cursors) is bound and planned as before.

Statements made inside `statements_together()` are sent in one pipeline, ended by one Sync:
one round trip for them all, their results read after the block. psycopg sends a transaction's
BEGIN alone and waits for its reply before the first statement (in pipeline mode too: it syncs
after BEGIN), a round trip of its own; inside `begin_with_first_statement()` (the group
commit's transactions, and unsynced_atomic's with their SET LOCAL) statements together that
are the transaction's first carry its BEGIN.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from django.db.backends.postgresql import base, operations
from django.utils.asyncio import async_unsafe
from psycopg import capabilities, pq
from psycopg.pq import TransactionStatus

from mailhost import dbcursor

# psycopg prepares a statement when asked (`prepare=True`) only if its connection's
# prepare_threshold is set; Django sets it None. The client cursors Django uses never
# prepare, whatever the threshold, so this one prepares only what a PreparedCursor runs.
_PREPARE_WHEN_ASKED = sys.maxsize
_PIPELINE = capabilities.has_pipeline()
_BINARY, _TEXT = pq.Format.BINARY, pq.Format.TEXT


class PreparedCursor(base.ServerBindingCursor):
    """A cursor whose statements are bound by the server and prepared on first use.

    Closed outside a pipeline, it goes back to its DatabaseWrapper (`keeper`) as the spare
    that the next prepared_cursor() hands out, rather than ending: making a psycopg cursor
    (its adapters' map, its loaders' callback) cost about 10 us of CPU, as much as the
    execution of a prepared statement's Python, and port 25 makes four a message. Its last
    results are dropped as it is kept. In a pipeline its results may still be on their way
    to it (they are read after the pipeline's Sync), so one closed there ends."""

    keeper: DatabaseWrapper | None = None
    # Django's wrapper of this cursor, made once and handed out with it each time.
    wrapper: dbcursor.CursorWrapper

    def execute(self, query, params=None, *, prepare=None, binary=None):  # noqa: ANN001, ANN201
        return super().execute(query, params, prepare=prepare is not False, binary=binary)

    def close(self) -> None:
        keeper = self.keeper
        if keeper is not None and keeper._spare_cursor is self:
            return  # closed again while kept: ending it would hand out a closed cursor next
        if (
            keeper is not None
            and keeper._spare_cursor is None
            and keeper.connection is self._conn
            and self._conn._pipeline is None
            and not self.closed
        ):
            self._reset()
            keeper._spare_cursor = self
            return
        super().close()


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):  # noqa: ANN001, ANN201
        """What Django's debug cursor logs (DEBUG, CaptureQueriesContext): the statement as
        psycopg sent it, or the text of one it ran prepared, which it sends by name and
        keeps no text of (else None)."""
        return super().last_executed_query(cursor, sql, params) or sql


# For the transaction only (SET LOCAL ends with it): its COMMIT does not wait for the disk.
_UNSYNCED = "SET LOCAL synchronous_commit = off"
# ... and back to the server's own level (mailboxes.transactions.sync_this_transaction).
_SYNCED = "SET LOCAL synchronous_commit TO DEFAULT"


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    _begin_with_first_statement = False
    _unsynced_pending = False
    # A closed PreparedCursor of this connection, for the next prepared_cursor() (or None).
    _spare_cursor: PreparedCursor | None = None
    # False in an unsynced_atomic transaction (mailboxes/transactions.py), as on SQLite.
    synced_commit = True

    @async_unsafe
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        connection.prepare_threshold = _PREPARE_WHEN_ASKED
        self._spare_cursor = None
        return connection

    def make_cursor(self, cursor):
        return dbcursor.CursorWrapper(cursor, self)

    def prepared_cursor(self, *, binary: bool = False):  # noqa: ANN201
        """A cursor for a hot path's plain statement (with `%s` parameters, as any other),
        prepared on its first run in this connection (see the module docstring). `binary`:
        its rows come in PostgreSQL's binary format, a bytea's bytes as they are rather than
        hex text that the server writes and psycopg decodes (for rows of plain columns:
        numbers, text, booleans, timestamps, bytea; a json column would come parsed)."""
        # Django's own checks (async_unsafe, ensure_connection, _prepare_cursor) made without
        # the calls around them, nor async_unsafe's RuntimeError in a thread without a loop:
        # about 40,000 instructions a cursor before, more than executing its statement.
        dbcursor.refuse_in_event_loop()
        self.close_if_health_check_failed()
        if self.connection is None:
            self.ensure_connection()
        cursor = self._spare_cursor
        if cursor is not None and cursor._conn is self.connection:
            self._spare_cursor = None
        else:
            with self.wrap_database_errors:
                cursor = PreparedCursor(self.connection)
            cursor.keeper = self
            cursor.wrapper = dbcursor.CursorWrapper(cursor, self)
        cursor.format = _BINARY if binary else _TEXT
        if self.queries_logged:
            return self._prepare_cursor(cursor)  # Django's debug wrapper, made each time
        self.validate_thread_sharing()
        return cursor.wrapper

    @contextlib.contextmanager
    def begin_with_first_statement(self, *, unsynced: bool = False) -> Iterator[None]:
        """Inside an atomic block that has made no statement yet: when its first statements
        are made together (statements_together), its BEGIN goes with them, one round trip
        where psycopg makes two. `unsynced`: the transaction's COMMIT does not wait for the
        WAL's flush (mailboxes/transactions.py); its SET LOCAL goes with the first statements
        made together (with the BEGIN, when they are the first of all), or by itself as the
        block ends when none are (before the COMMIT, the one statement it must precede)."""
        self._begin_with_first_statement = True
        self._unsynced_pending = unsynced
        try:
            yield
            if (
                self._unsynced_pending
                and self.connection.info.transaction_status == TransactionStatus.INTRANS
            ):
                with self.cursor() as cursor:
                    cursor.execute(_UNSYNCED)
        finally:
            self._begin_with_first_statement = False
            self._unsynced_pending = False

    def commit_synced(self) -> None:
        """The unsynced transaction in progress commits synced after all: its SET LOCAL not
        sent when it has not gone yet, else set back (one round trip)."""
        if self._unsynced_pending:
            self._unsynced_pending = False
            return
        with self.cursor() as cursor:
            cursor.execute(_SYNCED)

    def writer_locks_ahead(self) -> contextlib.AbstractContextManager[None]:
        """mailhost.sqlite3's writer locks taken before the transaction: nothing to take
        here (row locks are taken by the statements that need them)."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def statements_together(self) -> Iterator[None]:
        """The statements executed in the block sent in one pipeline and answered after one
        Sync: one round trip for all of them; their results are read after the block, and a
        statement's error is raised as the block ends. Statements that do not depend on one
        another's results only (a batch's blob rows, and the lock of its mailboxes)."""
        self.ensure_connection()
        conn = self.connection
        if not _PIPELINE:  # libpq before 14: one round trip a statement, as before
            yield
            return
        begins = (
            self._begin_with_first_statement
            and self.in_atomic_block
            and not conn.autocommit
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        unsynced = self._unsynced_pending and (
            begins or conn.info.transaction_status == TransactionStatus.INTRANS
        )
        with self.wrap_database_errors:
            if begins:
                # In autocommit psycopg sends no BEGIN of its own, so ours is queued ahead of
                # the statements and the pipeline's one Sync answers them all. The server is
                # then in the transaction, which psycopg's commit() and rollback() end whatever
                # its autocommit (they look at the server's status); Django sets autocommit
                # again when the atomic block ends, after that COMMIT or ROLLBACK.
                conn.autocommit = True
            with conn.pipeline():
                if begins:
                    conn.execute("BEGIN")
                if unsynced:
                    conn.execute(_UNSYNCED)
                    self._unsynced_pending = False
                yield

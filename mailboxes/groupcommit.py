"""Group commit: concurrent writers share one transaction and one durable commit.

Every durable commit costs a sync (SQLite's WAL fsync at synchronous=FULL, PostgreSQL's WAL
flush), and SQLite has one writer at a time, whose waiters sleep in its busy handler. So a
writer that arrives while another is committing does not start a transaction of its own: it
queues its work and waits. The writer that finds nobody committing leads: once it holds the
database's writer locks (SQLite's, mailhost/sqlite3: another process's transaction may hold
them) it takes what is queued (its own work included, and whatever came while it waited),
runs the pieces one after the other inside ONE transaction, commits once, and hands each
waiter its own result or its own exception. Nobody returns before the commit that holds its
rows. When a piece fails, that transaction is rolled back and the batch runs again with each
piece in its own savepoint (which cost PostgreSQL two round trips a piece under the batch's
row locks, so the common case goes without them), where a piece that fails rolls back to its
savepoint alone; a piece that failed on a database error (a deadlock, a lost connection), and
every piece when the commit itself fails, is run again in a transaction of its own, so one
bad message never fails another. There is no thread of its own: the leader is whichever
caller got there first (the group commit of PostgreSQL's and InnoDB's logs), so a lone
writer pays nothing extra.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from mailboxes import events
from mailboxes.transactions import unsynced_atomic
from mailhost.plainsql import Read, reads_together

T = TypeVar("T")
U = TypeVar("U")
A = TypeVar("A")

logger = logging.getLogger(__name__)

_MISSING = object()


class _Work:
    __slots__ = ("fn", "before", "arg", "synced", "done", "value", "error", "wake", "lead")

    def __init__(
        self,
        fn: Callable[[Any], Any],
        before: Callable[[Sequence[Any]], Sequence[Any]],
        arg: Any,
        synced: bool,
    ) -> None:
        self.fn = fn
        self.before = before
        self.arg = arg
        self.synced = synced
        self.done = False
        self.value: Any = _MISSING
        self.error: BaseException | None = None
        # Held from the start; released once, by a leader, when the caller is to look again:
        # its work done, or (`lead`) the lead handed to it.
        self.wake = threading.Lock()
        self.wake.acquire()
        self.lead = False

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def whole(self) -> Any:
        return self.fn(self.before([self.arg])[0])


_shared = threading.local()


def batch_rows(kind: str) -> dict[Any, Any] | None:
    """Rows of `kind` read (most locked FOR UPDATE, whose locks are held to the COMMIT) in
    the transaction this thread runs for the group committer without savepoints (a batch's,
    or one piece's alone), as a piece's `before` or `fn` chose to keep them, by key; None
    outside one. Nothing in the transaction is rolled back alone, so a later statement may
    use a row kept here instead of reading it again (a round trip on PostgreSQL), provided
    that whatever changes the row in the transaction changes the kept copy too, or forgets
    it, and that what a row read without its lock says is checked again under it (the
    mailboxes of services.delivery_batch_start on PostgreSQL). Gone with the transaction."""
    rows = getattr(_shared, "rows", None)
    if rows is None:
        return None
    return rows.setdefault(kind, {})


def send_later(sql: str, params: Sequence[Any], then: Callable[[Any], None]) -> bool:
    """In a batch's transaction without savepoints (a shared one of several pieces): keep a
    plain statement to be sent with the others kept so, in one round trip (statements_together,
    on PostgreSQL), ahead of the transaction's next other statement or its COMMIT, so that the
    statements run in the order they were made; `then` gets its first row (None when it has
    none) after that round trip. True when kept; False elsewhere, and the caller runs it now.
    The caller goes on as though the statement did what it expects: where it did not, `then`
    raises, which rolls the batch back and runs it again with savepoints, where nothing is
    kept (a batch of N messages to one mailbox: their N filings one round trip, not N)."""
    later = getattr(_shared, "later", None)
    if later is None:
        return False
    later.append((sql, params, then))
    return True


def sends_later() -> bool:
    """Whether send_later keeps statements in this thread now."""
    return getattr(_shared, "later", None) is not None


def merge_later(flush: Callable[[list[Any]], None], item: Any) -> bool:
    """In a batch's transaction without savepoints: keep `item` for `flush`, which gets all
    the items kept for it, in their order, in one call ahead of the transaction's next other
    statement or its COMMIT (as send_later's statements go), so that N pieces' like
    statements can be made as one. True when kept; False elsewhere, and the caller does the
    work now. As with send_later, the caller goes on as though the work was done; where it
    cannot be, `flush` raises, which rolls the batch back and runs it again with savepoints,
    where nothing is kept (SQLite: a batch of N messages to one folder, one UPDATE of the
    folder and one INSERT, not N of each)."""
    merged = getattr(_shared, "merged", None)
    if merged is None:
        return False
    merged.setdefault(flush, []).append(item)
    return True


def _send_kept() -> None:
    """Send the statements send_later kept, together, and hand each `then` its row; then
    hand each merge_later `flush` its items."""
    later = _shared.later
    if later:
        # The statements below come through _kept_first: nothing to send then.
        _shared.later = []
        firsts = reads_together([Read(sql, params, _first_row) for sql, params, _ in later])
        for (_, _, then), row in zip(later, firsts, strict=True):
            then(row)
    merged = _shared.merged
    if merged:
        _shared.merged = {}
        for flush, items in merged.items():
            flush(items)


def _first_row(rows: list[tuple]) -> tuple | None:
    return rows[0] if rows else None


def _kept_first(execute, sql, params, many, context):  # noqa: ANN001, ANN202
    """An execute wrapper: the kept statements go before any other (send_later)."""
    _send_kept()
    return execute(sql, params, many, context)


class GroupCommitter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Work] = []
        self._leading = False
        self.batches = 0  # transactions committed for more than one piece (tests, bench)

    @property
    def waiting(self) -> int:
        """Pieces queued behind the transaction in progress."""
        with self._lock:
            return len(self._queue)

    def run(self, fn: Callable[[], T], *, synced: bool = True) -> T:
        """Run `fn` (database writes, no transaction of its own) in a transaction, maybe
        shared with other callers' work; return its result once that transaction committed.
        `fn` may run more than once (see above), and must let database errors propagate (a
        swallowed one would roll its savepoint back unseen). Inside a caller's transaction it runs
        there, in a savepoint. Not `synced`: work that is not mail (mailboxes/transactions.py),
        whose commit need not wait for the disk; a transaction shared with synced work is
        synced."""
        return self.run_after(_nothing, None, lambda _: fn(), synced=synced)

    def run_after(
        self,
        before: Callable[[Sequence[A]], Sequence[U]],
        arg: A,
        fn: Callable[[U], T],
        *,
        synced: bool = True,
    ) -> T:
        """`run` of `fn(before([arg])[0])`, where a shared transaction without savepoints
        calls each `before` once, with the `arg` of every piece that has that `before` (in
        their order; it returns one result for each), ahead of any piece's `fn`: what `before`
        writes (rows no other writer waits on, such as new blob rows) is then written in one
        statement for the batch, and not while the rows that an earlier piece's `fn` locked
        (a mailbox's, its folder's UIDNEXT: held to the COMMIT) are held, so every other
        writer of those rows waits for less."""
        limit = settings.MAILHOST_GROUP_COMMIT_MAX
        if connections[DEFAULT_DB_ALIAS].in_atomic_block or limit <= 1:
            with transaction.atomic() if synced else unsynced_atomic():
                return fn(before([arg])[0])
        work = _Work(fn, before, arg, synced)
        with self._lock:
            self._queue.append(work)
            work.lead = not self._leading
            self._leading = True
        if not work.lead:
            self._wait(work)
            if work.done:
                return work.outcome()
        # This caller leads: its work is the queue's first (a leader hands the lead to the
        # first piece queued, and the queue is empty whenever nobody leads).
        db = connections[DEFAULT_DB_ALIAS]
        batch = None
        try:
            # The batch is taken once the leader holds the writer locks (SQLite; on
            # PostgreSQL nothing to wait for): what queued while it waited for another
            # process's transaction joins this one instead of waiting for the next.
            with db.writer_locks_ahead():
                with self._lock:
                    batch = self._queue[:limit]
                    del self._queue[:limit]
                with events.published_together():
                    self._commit(batch)
        except BaseException:
            if batch is None:  # the locks were not had: nothing ran, the caller's failure
                with self._lock:
                    if work in self._queue:
                        self._queue.remove(work)
            raise
        finally:
            self._hand_over(batch or [], work)
        return work.outcome()

    def _wait(self, work: _Work) -> None:
        """Wait until a leader did `work` or handed it the lead. Interrupted, the caller gives
        up its place, and a lead handed to it meanwhile goes on to the next piece."""
        try:
            work.wake.acquire()
        except BaseException:
            successor = None
            with self._lock:
                if work in self._queue:
                    self._queue.remove(work)
                if work.lead and not work.done:
                    successor = self._pass_lead_locked()
            if successor is not None:
                successor.wake.release()
            raise

    def _hand_over(self, batch: list[_Work], leader: _Work) -> None:
        """After a leader's turn: wake the callers whose work its batch did, and hand the lead
        to the first piece queued (or nobody leads). Each waiter is woken once, when there is
        something for it: a Condition's notify_all woke every waiter at every commit, those
        queued for the next batch included, each to take the lock in turn and wait again."""
        with self._lock:
            successor = self._pass_lead_locked()
        for done in batch:  # the successor is queued, never in the batch done
            if done is not leader:
                done.wake.release()
        if successor is not None:
            successor.wake.release()

    def _pass_lead_locked(self) -> _Work | None:
        """The first piece queued, made the leader (its caller is to be woken), or None when
        nothing is queued (nobody leads). Called with the lock held."""
        if not self._queue:
            self._leading = False
            return None
        successor = self._queue[0]
        successor.lead = True
        return successor

    def _commit(self, batch: list[_Work]) -> None:
        try:
            if len(batch) > 1:
                self._together(batch, synced=any(work.synced for work in batch))
            for work in batch:
                if not work.done:
                    _alone(work)
        except BaseException as exc:  # never leave a waiter waiting
            for work in batch:
                if not work.done:
                    work.error, work.done = exc, True
            raise

    def _together(self, batch: list[_Work], *, synced: bool) -> None:
        if self._without_savepoints(batch, synced=synced):
            return
        retry: list[_Work] = []

        def pieces() -> None:
            for work in batch:
                try:
                    with transaction.atomic():
                        work.value = work.whole()
                except DatabaseError:
                    retry.append(work)
                except Exception as exc:
                    work.error = exc

        try:
            _commit_transaction(pieces, synced=synced)
        except Exception as exc:
            if _unsynced(batch, exc):
                return
            # Nothing of the batch is stored (a savepoint statement or the COMMIT failed).
            for work in batch:
                work.value, work.error = _MISSING, None
            return
        self.batches += 1
        for work in batch:
            work.done = work not in retry

    def _without_savepoints(self, batch: list[_Work], *, synced: bool) -> bool:
        """Run the batch's pieces one after the other in one transaction with no savepoint
        of their own (each `before` once for the batch, ahead of the first `fn`: run_after;
        the rows a piece locked kept for the next: batch_rows), and commit;
        True when that stored them all (or committed and then did not sync: every piece
        failed). On PostgreSQL each savepoint is two round trips (the
        SAVEPOINT, its RELEASE) made by the leader while the folder's and mailbox's row locks
        are held, so the batch's locks are held for less time. When any piece raises, nothing
        is stored and False says so: the batch runs again with its savepoints, where that
        piece fails alone."""
        values: list[Any] = []

        def pieces() -> None:
            firsts = _befores(batch)
            for work, first in zip(batch, firsts, strict=True):
                values.append(work.fn(first))
            _send_kept()

        _shared.rows, _shared.later, _shared.merged = {}, [], {}
        try:
            with connections[DEFAULT_DB_ALIAS].execute_wrapper(_kept_first):
                _commit_transaction(pieces, synced=synced)
        except Exception as exc:
            if _unsynced(batch, exc):
                return True
            return False  # rolled back whole: nothing of the batch is stored
        finally:
            _shared.rows, _shared.later, _shared.merged = None, None, None
        self.batches += 1
        for work, value in zip(batch, values, strict=True):
            work.value, work.done = value, True
        return True


def _unsynced(batch: list[_Work], exc: Exception) -> bool:
    """Whether the batch's transaction committed and then did not sync (mailhost/sqlite3):
    the rows are there, so no piece is run again, and none may be reported stored."""
    if not getattr(exc, "after_commit", False):
        return False
    for work in batch:
        work.value, work.error, work.done = _MISSING, exc, True
    return True


def _alone(work: _Work) -> None:
    def piece() -> None:
        work.value = work.whole()

    _shared.rows = {}  # a transaction of its own, without a savepoint: batch_rows holds
    try:
        _commit_transaction(piece, synced=work.synced)
    except Exception as exc:
        work.value, work.error = _MISSING, exc
    finally:
        _shared.rows = None
    work.done = True


def _befores(batch: list[_Work]) -> list[Any]:
    """Each piece's `before` result, from one call of each distinct `before` with the args
    of all its pieces (port 25: one INSERT of the batch's blob rows, not one a message)."""
    pieces: dict[Callable, list[_Work]] = {}
    for work in batch:
        pieces.setdefault(work.before, []).append(work)
    results: dict[int, Any] = {}
    for before, works in pieces.items():
        for work, result in zip(works, before([w.arg for w in works]), strict=True):
            results[id(work)] = result
    return [results[id(work)] for work in batch]


def _nothing(args: Sequence[object]) -> list[None]:
    return [None] * len(args)


def _commit_transaction(fn: Callable[[], None], *, synced: bool = True) -> None:
    """Run `fn` in a transaction and commit (`synced`: waiting for the disk). An error before
    the commit propagates; one after it (an on_commit callback: a notification, an enqueue)
    is logged, so that work already committed is never run again."""
    committed: list[bool] = []
    db = connections[DEFAULT_DB_ALIAS]
    try:
        # On PostgreSQL the BEGIN goes with the first statement (mailhost/postgresql): one
        # round trip of the batch's fewer.
        with contextlib.ExitStack() as stack:
            if synced:
                stack.enter_context(transaction.atomic())
                stack.enter_context(db.begin_with_first_statement())
            else:
                stack.enter_context(unsynced_atomic(statements_together=True))
            transaction.on_commit(lambda: committed.append(True))  # the first callback to run
            fn()
    except Exception:
        if not committed:
            raise
        logger.exception("an on_commit callback failed after the commit")


committer = GroupCommitter()


def shared_where_writers_take_turns(fn: Callable[[], T], *, synced: bool = True) -> T:
    """`committer.run(fn)` on SQLite, whose writers take turns: the writes a process's threads
    make meanwhile share one turn of the writer lock and one commit. On PostgreSQL, whose
    writers do not take turns, `fn` in a transaction of its own (synced or not, the same):
    a batch of several mailboxes' writes would take their rows out of the
    mailbox-then-folder lock order that keeps its writers from deadlocking."""
    if connections[DEFAULT_DB_ALIAS].vendor == "sqlite":
        return committer.run(fn, synced=synced)
    with transaction.atomic() if synced else unsynced_atomic():
        return fn()

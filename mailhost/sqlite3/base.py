"""Django's SQLite backend, with this process's writers queued on a lock of its own.

SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps and
retries after 1, 2, 5, 10, ... up to 100 ms. Under load a writer that arrives after the lock
was freed (and takes it at once) often beats one asleep in the handler, so waits of tens of
milliseconds pile up behind transactions that hold the lock for one. Here a writer of this
process takes a threading lock before BEGIN IMMEDIATE and gives it back once its transaction
ends: the next writer wakes the moment the lock is free. Writers of other processes (workers,
management commands) still meet at SQLite's own lock, through the busy handler as before.
"""

from __future__ import annotations

import threading

from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _writer_lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    holds_writer_lock = False

    def _start_transaction_under_autocommit(self):
        lock = _writer_lock(str(self.settings_dict["NAME"]))
        # Bounded like the busy timeout: past it, BEGIN waits on SQLite's lock as it would
        # without this one (and fails there if the database stays locked).
        acquired = lock.acquire(timeout=self.settings_dict["OPTIONS"].get("timeout", 5))
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            if acquired:
                lock.release()
            raise
        self.holds_writer_lock = acquired

    def _release_writer_lock(self) -> None:
        if self.holds_writer_lock:
            self.holds_writer_lock = False
            _writer_lock(str(self.settings_dict["NAME"])).release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            # A failed COMMIT leaves the transaction open: Atomic rolls it back next.
            if self.connection is None or not self.connection.in_transaction:
                self._release_writer_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_writer_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_writer_lock()

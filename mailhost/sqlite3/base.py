"""Django's SQLite backend, with writers queued on locks of their own.

SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps and
retries after 1, 2, 5, 10, ... up to 100 ms. Under load a writer that arrives after the lock
was freed (and takes it at once) often beats one asleep in the handler, so waits of tens of
milliseconds pile up behind transactions that hold the lock for one. Here a writer takes,
before BEGIN IMMEDIATE, a threading lock of its process and then an flock() on a file beside
the database shared by every process (runmail's workers, delivery processes, management
commands), and gives both back once its transaction ends: the next writer, in this process or
another, is woken by the kernel the moment the lock is free instead of sleeping out SQLite's
backoff. Only one thread of a process waits on the file at a time (the threading lock comes
first), so the file lock is held by at most one thread per process and is never re-entered.

Writes in autocommit mode (a statement outside any transaction) take neither lock and still
meet the others at SQLite's own lock, through the busy handler, as do other programs that
open the database.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading

from django.db.backends.sqlite3 import base
from django.utils.asyncio import async_unsafe

from mailhost import dbcursor

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _writer_lock(name: str) -> threading.Lock:
    lock = _locks.get(name)
    if lock is None:
        with _locks_guard:
            lock = _locks.setdefault(name, threading.Lock())
    return lock


def lock_path(name: str) -> str:
    """The file whose flock() serializes the writers of database file `name`."""
    return f"{name}.writer-lock"


class _FileLocks:
    """This process's open lock files, one per database. An flock() belongs to the open file,
    so a forked child must not use its parent's: the files are opened again in a new process."""

    def __init__(self) -> None:
        self._pid = 0
        self._fds: dict[str, int] = {}
        self._guard = threading.Lock()

    def fd(self, name: str) -> int:
        pid = os.getpid()
        fd = self._fds.get(name)
        if fd is not None and self._pid == pid:
            return fd
        with self._guard:
            if self._pid != pid:
                self._fds = {}  # the parent's: left open for the parent, not used here
                self._pid = pid
            fd = self._fds.get(name)
            if fd is None:
                fd = os.open(lock_path(name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._fds[name] = fd
            return fd


_files = _FileLocks()


# Statements longer than this (bulk inserts of many rows) are converted each time, not kept.
CONVERTED_MAX_LENGTH = 4096


@functools.lru_cache(maxsize=256)
def _qmark(query: str) -> str:
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's cursor, with the "format" placeholders of each statement text turned into
    SQLite's "qmark" ones once, not on every execution: the regular expression (a lookbehind,
    so tried at every octet of the statement) cost port 25 about 0.6 M instructions a
    message over its dozen statements."""

    def convert_query(self, query, *, param_names=None):
        if param_names is None and len(query) <= CONVERTED_MAX_LENGTH:
            return _qmark(query)
        return super().convert_query(query, param_names=param_names)


class DatabaseWrapper(base.DatabaseWrapper):
    holds_writer_lock = False
    holds_file_lock: int | None = None

    @async_unsafe
    def create_cursor(self, name=None):
        return self.connection.cursor(factory=CursorWrapper)

    def make_cursor(self, cursor):
        # Its attributes named, not found by __getattr__ after a failed lookup (see there).
        return dbcursor.CursorWrapper(cursor, self)

    def _start_transaction_under_autocommit(self):
        name = str(self.settings_dict["NAME"])
        lock = _writer_lock(name)
        # Bounded like the busy timeout: past it, BEGIN waits on SQLite's lock as it would
        # without this one (and fails there if the database stays locked).
        acquired = lock.acquire(timeout=self.settings_dict["OPTIONS"].get("timeout", 5))
        try:
            if acquired and not self.is_in_memory_db():
                # The holder is a thread inside a write transaction of its own (nothing else
                # takes the file), which ends or fails on SQLite's busy timeout: waiting
                # without a bound here waits at most that long. A holder that dies releases
                # it with its file.
                fd = _files.fd(name)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self.holds_file_lock = fd
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_file_lock()
            if acquired:
                lock.release()
            raise
        self.holds_writer_lock = acquired

    def _release_file_lock(self) -> None:
        fd, self.holds_file_lock = self.holds_file_lock, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _release_writer_lock(self) -> None:
        self._release_file_lock()
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

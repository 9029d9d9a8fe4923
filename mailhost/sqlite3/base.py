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
The group committer's leader takes the locks before its batch (`writer_locks_ahead`), so that
the pieces that queue while it waits for another process join its transaction.

Writes in autocommit mode (a statement outside any transaction) take neither lock and still
meet the others at SQLite's own lock, through the busy handler, as do other programs that
open the database.

A durable transaction's sync happens after both locks are given back. SQLite at
synchronous=FULL syncs the WAL inside COMMIT, holding its write lock (and so ours) for the
whole sync: every process's next writer waited for this one's disk. Here a transaction runs at
synchronous=NORMAL (COMMIT writes the WAL and does not sync it; the two PRAGMAs are made
before the locks are taken and after they are given back, each statement under them being a
release of the GIL its holder must win back), and `_commit` then gives the
locks back and syncs the WAL itself (fdatasync of the -wal file) before it returns, so that
the next writer's statements run while this one's bytes reach the disk, and two processes'
syncs can share the file system's journal commit. The caller still returns only after the
sync: the rows of an SMTP 250 or an IMAP APPEND OK are on the disk when it is said. The log is
written in order, so the sync covers every earlier commit too; frames a checkpoint has moved
into the database file were synced there first (NORMAL syncs the WAL before a checkpoint and
the database after it), and the WAL file cannot be removed while this connection is open.
A transaction of mailboxes.transactions.unsynced_atomic skips the sync. Outside transactions
the connection stays at its configured level (FULL), so autocommit writes sync as before.

Checkpoints (the WAL's frames copied into the database file) happen off the committing thread
in a server process (`checkpoints.start`, by mailhost/runner.py). SQLite runs one inside the
COMMIT that takes the WAL past wal_autocheckpoint pages (1000): about every 45th message of
port 25 waited, before its 250, for the copy and its two syncs (the WAL's, the database
file's), the writer locks held throughout. Here a thread of the process, woken by the first
commit after its last look, lets a burst's commits gather for
MAILHOST_SQLITE_CHECKPOINT_INTERVAL, reads how many frames wait in the WAL and, past
CHECKPOINT_PAGES, checkpoints on its own connection, holding the writer locks as that COMMIT
did, so that no writer of ours appends meanwhile and the next one starts the WAL over from its
beginning instead of growing it. The checkpoint syncs as SQLite's own does (the WAL before the
copy, the database file after it), and each one costs the next commit a sync of the WAL's new
header. The process's connections keep SQLite's automatic checkpoint only as a backstop, at
BACKSTOP_PAGES.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import logging
import os
import struct
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.backends.sqlite3 import base, operations
from django.utils.dateparse import parse_datetime

from mailhost import dbcursor

logger = logging.getLogger(__name__)

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


class _WalFiles:
    """This process's descriptors of the databases' WAL files, for the sync after a commit
    (and of their -shm files, for the checkpoint thread's look at the WAL-index header).
    fsync belongs to the file, not the descriptor: one opened here syncs what SQLite's own
    wrote. A WAL file removed and made anew (once every connection had closed) is opened
    again; the old descriptor stays open, since another thread may be syncing through it."""

    def __init__(self) -> None:
        self._pid = 0
        self._fds: dict[str, tuple[int, int]] = {}  # path -> (inode, descriptor)
        self._retired: list[int] = []
        self._guard = threading.Lock()

    def sync(self, name: str) -> None:
        """Sync the WAL of database file `name` (the file itself when there is no WAL)."""
        path = f"{name}-wal"
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            path, inode = name, os.stat(name).st_ino
        fd, new = self.descriptor(path, inode)
        if new:
            # A new file's name in its directory, durable once (SQLite's own sync of a new
            # WAL does the same).
            directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        os.fdatasync(fd)

    def descriptor(self, path: str, inode: int) -> tuple[int, bool]:
        """This process's descriptor of the file at `path` (of that inode), and whether it
        was opened just now. Never closed: besides a sync in another thread, closing any
        descriptor of a file drops every POSIX lock the process holds on it, SQLite's own."""
        known = self._fds.get(path)
        if known is not None and known[0] == inode and self._pid == os.getpid():
            return known[1], False
        with self._guard:
            if self._pid != os.getpid():
                self._fds, self._retired, self._pid = {}, [], os.getpid()
            known = self._fds.get(path)
            if known is not None and known[0] == inode:
                return known[1], False
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            if known is not None:
                self._retired.append(known[1])
            self._fds[path] = (os.fstat(fd).st_ino, fd)
            return fd, True


_wal_files = _WalFiles()


class _Checkpoints:
    """This process's checkpoint thread (see the module docstring), if it runs one."""

    def __init__(self) -> None:
        self.interval = 0.0
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._wanted = threading.Event()
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        # A forked child has its parent's object but not its thread.
        return self._thread is not None and self._pid == os.getpid()

    def start(self, interval: float) -> None:
        """Checkpoint in a thread of this process from now on (0: SQLite's own, in COMMIT)."""
        if interval <= 0 or self.running:
            return
        self.interval, self._pid = interval, os.getpid()
        self._wanted, self._stopping = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self.running:
            return
        self._stopping.set()
        self._wanted.set()
        self._thread.join()
        self._thread = None

    def committed(self) -> None:
        """A transaction committed: a checkpoint is due within the interval. Only the first
        commit after a checkpoint wakes the thread."""
        if not self._wanted.is_set() and self.running:
            self._wanted.set()

    def _run(self) -> None:
        try:
            while True:
                self._wanted.wait()
                if self._stopping.wait(self.interval):  # the burst's commits gather meanwhile
                    return
                self._wanted.clear()  # before the checkpoint: a commit from now wakes the next
                try:
                    connections[DEFAULT_DB_ALIAS].checkpoint(frames=CHECKPOINT_PAGES)
                except Exception:
                    logger.exception("WAL checkpoint failed; trying again after the next commit")
        finally:
            connections.close_all()


checkpoints = _Checkpoints()

# The checkpoint thread copies the WAL once this many frames wait in it (16 MB of 4 KiB
# pages); the process's connections check for themselves only past BACKSTOP_PAGES, when the
# thread runs. At SQLite's own 1000 a checkpoint came every 100 port 25 messages, its copy and
# two syncs under the writer locks: the pages a burst writes again and again (its folder's,
# its mailbox's, the indexes' last leaves) are copied once in four times as many frames.
CHECKPOINT_PAGES = 4000
BACKSTOP_PAGES = 10000
# The WAL-index header at the start of the -shm file (https://www.sqlite.org/walformat.html,
# native byte order): its version, mxFrame (the WAL's last valid frame) and nBackfill (the
# frames already in the database file).
WAL_INDEX_VERSION = 3007000
_WAL_INDEX = struct.Struct("=I12xI76xI")


def _frames_waiting(name: str) -> int | None:
    """Frames of database `name`'s WAL not yet in the database file, from the WAL-index;
    None when it cannot be read or is of another version (then a checkpoint is tried). Read
    without SQLite's locks: a torn read only makes one checkpoint early or late."""
    # Through a descriptor kept open (_WalFiles.descriptor): an open and close here would
    # drop this process's POSIX locks on the -shm, SQLite's own (the "dead man's switch" that
    # tells a newcomer the wal-index is in use, the readers' marks), and another process
    # would take the wal-index for abandoned and truncate it under this one's mapping.
    path = f"{name}-shm"
    try:
        fd, _new = _wal_files.descriptor(path, os.stat(path).st_ino)
        header = os.pread(fd, _WAL_INDEX.size, 0)
    except OSError:
        return None
    if len(header) < _WAL_INDEX.size:
        return None
    version, last_frame, backfilled = _WAL_INDEX.unpack(header)
    if version != WAL_INDEX_VERSION:
        return None
    return last_frame - backfilled


# PRAGMA synchronous levels: a configured level from FULL up is what a transaction here
# relaxes to NORMAL, syncing the WAL itself after the commit.
SYNC_NORMAL, SYNC_FULL = 1, 2


# Parameters of these types are bound as they are, but the sqlite3 module looks each one up
# first (only int, float, str and bytearray skip that), and when its registry has no adapter it
# asks the protocol class for __adapt__: an AttributeError made and cleared every time, 13 a
# port 25 message (its booleans, its blob's bytes, a NULL). Found in the registry, each is
# bound as before: a bool as the integer it is, bytes and None unchanged.
base.Database.register_adapter(bool, int)
base.Database.register_adapter(bytes, bytes)
base.Database.register_adapter(type(None), lambda value: value)


_UTC = datetime.UTC

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


class DatabaseOperations(operations.DatabaseOperations):
    """Django's, with the datetime conversions of each parameter and column (a delivery
    claim and its results have ten, a spooled message five) made in place rather than
    through django.utils.timezone's is_aware, make_naive and make_aware, three Python calls
    a value: the same values, the same errors."""

    def adapt_datetimefield_value(self, value):  # noqa: ANN001, ANN201
        if value is None:
            return None
        if (
            type(value) is datetime.datetime
            and value.tzinfo is _UTC
            and self.connection.timezone is _UTC
        ):
            # Already in the connection's zone, UTC (timezone.now()'s): the text of the naive
            # value is its own without the "+00:00" at its end, made without astimezone and
            # replace (replace's keyword alone cost about 10,000 instructions a value).
            return str(value)[:-6]
        if value.utcoffset() is not None:  # timezone.is_aware
            if not settings.USE_TZ:
                return super().adapt_datetimefield_value(value)  # its ValueError
            value = value.astimezone(self.connection.timezone).replace(tzinfo=None)
        return str(value)

    def convert_datetimefield_value(self, value, expression, connection):  # noqa: ANN001, ANN201
        if type(value) is str and self.connection.timezone is _UTC:
            # A stored naive text read in the connection's zone, UTC, by one parse with the
            # zone's offset written after it (replace's keyword cost about 10,000
            # instructions a value). A text this does not read as an aware UTC time (one
            # with an offset of its own, a date alone) goes the way below.
            try:
                parsed = datetime.datetime.fromisoformat(value + "+00:00")
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is _UTC:
                return parsed
        if value is not None:
            if not isinstance(value, datetime.datetime):
                value = parse_datetime(value)
            if settings.USE_TZ and value.utcoffset() is None:  # timezone.make_aware
                value = value.replace(tzinfo=self.connection.timezone)
        return value


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    holds_writer_lock = False
    holds_file_lock: int | None = None
    # Whether the next transaction's commit is synced (mailboxes.transactions.unsynced_atomic
    # sets it False for its transaction).
    synced_commit = True
    # The connection's configured PRAGMA synchronous (read once per connection), and whether
    # the transaction in progress runs relaxed to NORMAL with the sync left to _commit.
    configured_sync = SYNC_FULL
    _relaxed = False
    # Whether the writer locks are held for the next transaction (writer_locks_ahead).
    _locks_ahead = False

    def get_new_connection(self, conn_params):
        conn = super().get_new_connection(conn_params)
        (self.configured_sync,) = conn.execute("PRAGMA synchronous").fetchone()
        if checkpoints.running:
            conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        return conn

    # Django's async_unsafe on these three raised and caught a RuntimeError each in every
    # database thread (24 a port 25 message); the same check, without one (dbcursor).
    def cursor(self):
        dbcursor.refuse_in_event_loop()
        return self._cursor()

    def ensure_connection(self):
        dbcursor.refuse_in_event_loop()
        if self.connection is None:
            super().ensure_connection()

    def create_cursor(self, name=None):
        dbcursor.refuse_in_event_loop()
        return self.connection.cursor(factory=CursorWrapper)

    def make_cursor(self, cursor):
        # Its attributes named, not found by __getattr__ after a failed lookup (see there).
        return dbcursor.CursorWrapper(cursor, self)

    def prepared_cursor(self, *, binary: bool = False):  # noqa: ANN201
        """mailhost.postgresql's cursor for hot statements: here the ordinary one, whose
        statements Python's sqlite3 module already keeps prepared (its statement cache);
        `binary` has no meaning here (sqlite3 gives a BLOB as its bytes)."""
        return self.cursor()

    def begin_with_first_statement(self) -> contextlib.AbstractContextManager[None]:
        """mailhost.postgresql's BEGIN sent with the transaction's first statements: here
        nothing to do (the atomic block's BEGIN IMMEDIATE is no round trip, and takes the
        write lock)."""
        return contextlib.nullcontext()

    def statements_together(self) -> contextlib.AbstractContextManager[None]:
        """mailhost.postgresql's statements sent in one round trip: here each runs in turn
        (a call into the library, no round trip)."""
        return contextlib.nullcontext()

    def _start_transaction_under_autocommit(self):
        if self._locks_ahead:
            self._locks_ahead = False  # taken by writer_locks_ahead: this transaction's now
        else:
            self._prepare_to_write()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_writer_lock()
            self._end_relaxed()
            raise

    @contextlib.contextmanager
    def writer_locks_ahead(self) -> Iterator[None]:
        """Take the writer locks now, for the next transaction this block starts (which gives
        them back when it ends, as its own); given back at the end of the block if none did.
        The group committer's leader waits for the locks before it takes its batch, so that
        what queued meanwhile joins it. Nothing inside a transaction, or for a database in
        memory (no file lock), or when the locks are held already."""
        if self.in_atomic_block or self.holds_writer_lock or self.holds_file_lock is not None:
            yield
            return
        self.ensure_connection()
        if self.is_in_memory_db():
            yield
            return
        self._prepare_to_write()
        self._locks_ahead = True
        try:
            yield
        finally:
            if self._locks_ahead:  # no transaction took them
                self._locks_ahead = False
                self._release_writer_lock()
                self._end_relaxed()

    def _prepare_to_write(self) -> None:
        """Relaxed (_relax), then the writer locks."""
        self._relax()
        try:
            self.holds_writer_lock = self._take_writer_locks()
        except BaseException:
            self._end_relaxed()
            raise

    def _relax(self) -> None:
        """A transaction here runs at NORMAL, the WAL synced by _commit (see the module
        docstring); set before the writer locks are taken (SQLite refuses to change the
        level inside a transaction), so that no statement of it is made while they are held."""
        if self.configured_sync >= SYNC_FULL and not self._relaxed:
            self.ensure_connection()
            if not self.is_in_memory_db():
                self.connection.execute("PRAGMA synchronous=NORMAL")
                self._relaxed = True

    def _take_writer_locks(self) -> bool:
        """This process's threading lock of the database, then the file lock shared by the
        processes; whether the threading lock was taken (not after the timeout)."""
        name = str(self.settings_dict["NAME"])
        lock = _writer_lock(name)
        # Bounded like the busy timeout: past it, BEGIN waits on SQLite's lock as it would
        # without this one (and fails there if the database stays locked).
        acquired = lock.acquire(timeout=self.settings_dict["OPTIONS"].get("timeout", 5))
        if acquired and not self.is_in_memory_db():
            # The holder is a thread inside a write transaction of its own (nothing else
            # takes the file), which ends or fails on SQLite's busy timeout: waiting
            # without a bound here waits at most that long. A holder that dies releases
            # it with its file.
            try:
                fd = _files.fd(name)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                lock.release()
                raise
            self.holds_file_lock = fd
        return acquired

    def _end_relaxed(self) -> bool:
        """Back to the configured level once the transaction is over (after the writer locks
        are given back); whether it was relaxed (its commit then still needs the WAL's sync)."""
        relaxed, self._relaxed = self._relaxed, False
        if relaxed and self.connection is not None:
            self.connection.execute(f"PRAGMA synchronous={int(self.configured_sync)}")
        return relaxed

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
        committed = False
        try:
            result = super()._commit()
            committed = True
            return result
        finally:
            # A failed COMMIT leaves the transaction open: Atomic rolls it back next.
            if self.connection is None or not self.connection.in_transaction:
                self._release_writer_lock()
                relaxed = self._end_relaxed()
                if committed and relaxed and self.synced_commit:
                    self._sync_wal()  # the locks are free for the next writer meanwhile
                if committed:
                    checkpoints.committed()

    def checkpoint(self, *, frames: int = 0) -> None:
        """Copy the WAL's frames into the database file when at least `frames` wait there,
        holding the writer locks (so the copy is whole and the next writer starts the WAL
        over); readers are not waited for (PASSIVE): frames one of them still reads are
        copied by a later checkpoint."""
        self.ensure_connection()
        if self.is_in_memory_db():
            return
        name = str(self.settings_dict["NAME"])
        waiting = _frames_waiting(name) if frames else None
        if waiting is not None and waiting < frames:
            return
        lock = _writer_lock(name)
        with lock:
            fd = _files.fd(name)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _sync_wal(self) -> None:
        try:
            _wal_files.sync(str(self.settings_dict["NAME"]))
        except OSError as exc:
            # Committed but maybe not on the disk: the caller must not say it is stored, and
            # must not run the work again either (mailboxes.groupcommit reads the mark).
            error = OperationalError(f"the committed transaction could not be synced: {exc}")
            error.after_commit = True
            raise error from exc

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_writer_lock()
            self._end_relaxed()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._relaxed = self._locks_ahead = False
            self._release_writer_lock()

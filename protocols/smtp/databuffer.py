"""One transaction's message data on its way in (DATA or BDAT chunks).

The bytes are checked as they come (syntax.ContentFilter), kept in memory up to
MAILHOST_SMTP_SPOOL_THRESHOLD octets and beyond it in a private temporary file (mode 0600) in
MAILHOST_DATA_DIR/tmp, so that connections sending large messages slowly, or never finishing
them, hold no more memory than the threshold each. The file is removed as soon as the
transaction ends, whichever way it ends. It is scratch space only: durability is the
acceptance service's (it writes and syncs the blob before the 250).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from protocols.smtp import replies, syntax
from protocols.smtp.replies import Reply

PREFIX = "smtp-data-"

# Pieces past the threshold are checked and written here, off the event loop: a file write
# can block in the kernel (dirty-page throttling) for tens of milliseconds. One thread: the
# pieces of all transactions queue here rather than compete with the event loop for the GIL.
SPOOL_WRITERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smtp-spool")


def spool_dir() -> Path:
    path = Path(settings.DATA_DIR) / "tmp"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def sweep_stale(now: float | None = None) -> int:
    """Remove files that a killed process left behind. None can be older than the total DATA
    time limit while its transaction lives (other processes may share the directory)."""
    limit = (now or time.time()) - settings.MAILHOST_SMTP_DATA_TOTAL_TIMEOUT - 3600
    removed = 0
    for path in spool_dir().glob(PREFIX + "*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
    return removed


class MessageBuffer:
    """Bytes in memory up to `threshold`, then all of them in a temporary file."""

    def __init__(self, *, threshold: int) -> None:
        self.threshold = threshold
        self.size = 0
        self.path: str | None = None
        # A message of one piece (DATA's usual case) is kept and handed on as it is, where a
        # bytearray copied it in and out again; a second piece makes it a bytearray, which
        # holds the octets alone (a list of pieces held 40 times the threshold when a client
        # sent them an octet or a line at a time: each bytes object's own 33 octets).
        self._memory: bytes | bytearray = b""
        self._file = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._file is None and self.size + len(data) > self.threshold:
            fd, self.path = tempfile.mkstemp(prefix=PREFIX, dir=spool_dir())  # mode 0600
            self._file = os.fdopen(fd, "w+b")
            self._file.write(self._memory)
            self._memory = b""
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
        elif not self._memory:
            self._memory = bytes(data)  # a bytes piece: that object, not a copy
        elif type(self._memory) is bytes:
            memory = bytearray(self._memory)
            memory += data
            self._memory = memory
        else:
            self._memory += data

    def getvalue(self) -> bytes:
        if self._file is None:
            memory = self._memory
            return memory if type(memory) is bytes else bytes(memory)
        self._file.flush()
        self._file.seek(0)
        return self._file.read()

    def discard(self) -> None:
        self._memory = b""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None


class IncomingMessage:
    """The message of one transaction as it arrives: size limit, content checks, buffer."""

    def __init__(self, *, dot_stuffed: bool, max_size: int, deadline: float) -> None:
        self.filter = syntax.ContentFilter(
            dot_stuffed=dot_stuffed,
            bare_line_endings=settings.MAILHOST_SMTP_BARE_LINE_ENDINGS,
            nul_bytes=settings.MAILHOST_SMTP_NUL_BYTES,
            max_line=settings.MAILHOST_SMTP_MAX_LINE_LENGTH,
        )
        self.buffer = MessageBuffer(threshold=settings.MAILHOST_SMTP_SPOOL_THRESHOLD)
        self.max_size = max_size
        self.deadline = deadline  # loop time by which the whole message must be in
        self.wire_size = 0  # octets received, as sent (dot-stuffed for DATA)
        self.too_big = False
        self._lock = threading.Lock()  # one feed or discard at a time
        self._discarded = False

    @property
    def problem(self) -> Reply | None:
        return replies.S552_MESSAGE_TOO_BIG if self.too_big else self.filter.problem

    def spools(self, data: bytes) -> bool:
        """Whether feeding `data` writes to the temporary file (then feed it off the loop)."""
        return self.buffer.size + len(data) > self.buffer.threshold

    def feed(self, data: bytes) -> None:
        """Check and keep `data`. Safe in a worker thread while the event loop may call
        discard(): the session awaits each feed before the next, and discard() of a
        transaction whose piece is being written leaves the removal to that writer."""
        with self._lock:
            if not self._discarded:
                self._feed(data)
        if self._discarded:  # set before discard() tried the lock: this writer removes
            self.discard()

    def _feed(self, data: bytes) -> None:
        if self.problem is not None:
            return  # read and dropped: the transaction has failed
        self.wire_size += len(data)
        if self.wire_size > self.max_size:
            self.too_big = True
        else:
            self.buffer.write(self.filter.feed(data))
        if self.problem is not None:
            self.buffer.discard()

    def finish(self) -> bytes:
        """The cleaned message (check `problem` first); the buffer is freed."""
        try:
            if self.problem is None:
                self.buffer.write(self.filter.finish())
            return self.buffer.getvalue() if self.problem is None else b""
        finally:
            self.buffer.discard()

    def discard(self) -> None:
        self._discarded = True
        if self._lock.acquire(blocking=False):  # else a writer holds it and removes the file
            try:
                self.buffer.discard()
            finally:
                self._lock.release()

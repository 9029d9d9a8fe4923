"""What a listener family's `start()` returns: named listeners the runner can stop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any

# A client that vanishes without FIN or RST (a phone losing signal) leaves a half-open session
# behind, holding its POP3 maildrop or an IMAP connection slot until the autologout (10 and
# 30 minutes). TCP keepalive finds such a peer within two minutes of silence: probes after
# KEEPALIVE_IDLE seconds, KEEPALIVE_INTERVAL apart, given up after KEEPALIVE_PROBES unanswered.
# A live client answers the probes from its kernel, so an idle session is not cut.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 60, 10, 6
KEEPALIVE_LISTENERS = frozenset({"imap", "imaps", "pop3", "pop3s", "managesieve"})


@dataclass
class Listener:
    # "smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve",
    # "web", "worker"
    name: str
    server: Any  # asyncio.Server, or anything with close() and async wait_closed()

    def __post_init__(self) -> None:
        if self.name in KEEPALIVE_LISTENERS:
            for sock in getattr(self.server, "sockets", None) or ():
                keep_alive(sock)

    @property
    def port(self) -> int | None:
        if hasattr(self.server, "port"):
            return self.server.port
        sockets = getattr(self.server, "sockets", None)
        return sockets[0].getsockname()[1] if sockets else None

    def close(self) -> None:
        self.server.close()

    async def wait_closed(self) -> None:
        result = self.server.wait_closed()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            await result


def keep_alive(sock: Any) -> None:
    """TCP keepalive on a listening socket; the sockets it accepts inherit it (Linux)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


# --- Several worker processes (MAILHOST_PROCESSES, mailhost/processes.py)

_inherited: dict[str, Any] = {}  # listener name -> the socket the supervisor opened
_shared: Any = None  # the supervisor's SharedCounts, in a worker process


def inherited(name: str) -> Any:
    """The listening socket the supervisor opened for this listener, or None (then the family
    binds its own, as a single process does)."""
    return _inherited.get(name)


class LocalCounts:
    """Open connections of one pool in this process, by key (a client address)."""

    def __init__(self) -> None:
        self.count = 0
        self.by_key: Counter[str] = Counter()

    def total(self) -> int:
        return self.count

    def get(self, key: str) -> int:
        return self.by_key.get(key, 0)

    def add(self, key: str, delta: int) -> None:
        self.count += delta
        self.by_key[key] += delta
        if self.by_key[key] <= 0:
            del self.by_key[key]


# The pools whose caps hold across worker processes (protocols/common/listener.py: Caps).
POOLS = ("smtp", "submission", "imap", "imap-user", "pop3", "managesieve", "watch", "wake")
# Not caps: "watch" counts, by mailbox, what hears a mailbox's change events in each worker
# (mailboxes/events.py: watch), "wake" is a flag in its total (events.wake_on_exists).
BUCKETS = 65536  # per pool: a client address (a mailbox) counts in one bucket, by keyed hash


class SharedCounts:
    """Open connections of every pool in every worker, in anonymous shared memory the
    supervisor maps before it starts the workers. Each worker writes only its own row per pool
    (a total and a count per bucket of client addresses), so no lock is needed; a reader sums
    the rows of all workers. The supervisor zeroes a dead worker's rows before restarting it.
    Two addresses in one bucket count together: the bucket is a keyed hash (a random key per
    start), so nobody can aim at another client's bucket."""

    def __init__(self, workers: int, *, fd: int | None = None, key: bytes | None = None) -> None:
        """New counts, or (`fd`, `key`) those a worker started afresh maps again (Linux: a
        memfd, whose descriptor passes through exec; elsewhere anonymous memory, inherited by
        forked workers only)."""
        import mmap

        self.workers = workers
        self.row = BUCKETS + 1
        self.size = workers * self.per_worker()
        if fd is None and hasattr(os, "memfd_create"):
            fd = os.memfd_create("mailhost-counts")
            os.ftruncate(fd, self.size)
        self.fd = fd
        self.memory = mmap.mmap(-1 if fd is None else fd, self.size)
        self.cells = memoryview(self.memory).cast("i")
        self.key = key or os.urandom(16)
        self.slot = 0

    @staticmethod
    def per_worker() -> int:
        """Bytes of one worker's rows, which the supervisor zeroes before it restarts it."""
        return len(POOLS) * (BUCKETS + 1) * 4

    def pool(self, name: str) -> PoolCounts:
        return PoolCounts(self, POOLS.index(name))

    def offset(self, worker: int, pool: int) -> int:
        return (worker * len(POOLS) + pool) * self.row

    def clear(self, worker: int) -> None:
        start = self.offset(worker, 0)
        end = start + len(POOLS) * self.row
        self.cells[start:end] = memoryview(bytes((end - start) * 4)).cast("i")

    def bucket(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=4, key=self.key).digest()
        return 1 + int.from_bytes(digest, "big") % BUCKETS


class PoolCounts:
    """One pool's counts, as LocalCounts, summed over the workers."""

    def __init__(self, shared: SharedCounts, pool: int) -> None:
        self.shared = shared
        self.pool = pool

    def _sum(self, index: int) -> int:
        shared = self.shared
        return sum(
            shared.cells[shared.offset(worker, self.pool) + index]
            for worker in range(shared.workers)
        )

    def total(self) -> int:
        return self._sum(0)

    def get(self, key: str) -> int:
        return self._sum(self.shared.bucket(key))

    def add(self, key: str, delta: int) -> None:
        shared = self.shared
        own = shared.offset(shared.slot, self.pool)
        shared.cells[own] += delta
        shared.cells[own + shared.bucket(key)] += delta

    def others_with(self, key: str) -> list[int]:
        """The other workers whose row counts `key` (or a key of its bucket): a worker with
        an empty row costs one read, no hash."""
        shared = self.shared
        cells, bucket, found = shared.cells, None, []
        for worker in range(shared.workers):
            if worker == shared.slot:
                continue
            row = shared.offset(worker, self.pool)
            if cells[row]:
                if bucket is None:
                    bucket = shared.bucket(key)
                if cells[row + bucket]:
                    found.append(worker)
        return found

    def raise_flag(self) -> None:
        """This worker's flag (the row's total) up: another worker takes it with take_flags."""
        shared = self.shared
        shared.cells[shared.offset(shared.slot, self.pool)] = 1

    def take_flags(self) -> list[int]:
        """The other workers whose flag is up, lowered."""
        shared = self.shared
        cells, found = shared.cells, []
        for worker in range(shared.workers):
            row = shared.offset(worker, self.pool)
            if worker != shared.slot and cells[row]:
                cells[row] = 0
                found.append(worker)
        return found


def shared_counts(pool: str) -> Any:
    """The counts a connection cap reads: this process's alone, or every worker's together."""
    if _shared is None:
        return LocalCounts()
    return _shared.pool(pool)

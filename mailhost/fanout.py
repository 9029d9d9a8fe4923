"""Messages between the worker processes of one server (MAILHOST_PROCESSES), without Redis.

What one process must tell the others: a folder changed (IMAP IDLE and NOTIFY, webmail push,
the indexer: mailboxes/events.py), a login failed or succeeded (the limiter:
mailboxes/throttle.py), a POP3 maildrop was taken over (protocols/pop3), a message waits for
delivery (each worker's embedded queue takes its share of the messages: delivery/queue.py).

The supervisor makes, before it starts the workers, one Unix datagram socket pair per worker
(socket.socketpair: no name in the filesystem or the abstract namespace, so nothing outside
the server can write to them). Every worker inherits every pair's sending end and keeps its own
receiving end; `send()` writes one datagram to each other worker (waits at most SEND_TIMEOUT for
a worker whose queue is full: one that is stuck or restarting misses it, as a process that
is down would), and a thread in
each worker reads its end and calls the subscribers of the message's topic.

In a single process (or a process not started by the supervisor) `send()` does nothing: the
caller handles its own process directly, as it always has.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# Datagrams this size pass on Linux's default socket buffers; a larger message is split by
# its sender (events.py sends an event's UIDs in parts).
MAX_DATAGRAM = 60_000
SEND_TIMEOUT = 1.0  # seconds a send waits for a worker whose queue is full, then gives up
SEND_BUFFER = 4 * 1024 * 1024  # asked for; the kernel caps it at net.core.wmem_max

Subscriber = Callable[[dict[str, Any]], None]

_subscribers: dict[str, list[Subscriber]] = defaultdict(list)
_lock = threading.Lock()
_pairs: list[tuple[socket.socket, socket.socket]] = []  # per worker: (receive, send)
_slot: int | None = None


def prepare(count: int) -> None:
    """In the supervisor, before any worker starts: one socket pair per worker."""
    global _pairs
    _pairs = []
    for _ in range(count):
        receive, send = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sock in (receive, send):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SEND_BUFFER)
            except OSError:
                pass
        # A receiving end queues few datagrams (net.unix.max_dgram_qlen, often 10): past that
        # the sender waits for the reader thread, which only hands messages on, a moment.
        send.settimeout(SEND_TIMEOUT)
        _pairs.append((receive, send))


def adopt(pairs: list[tuple[int, int]]) -> None:
    """In a worker started afresh (not forked from the supervisor's image): the socket pairs
    prepare() made, from their inherited descriptors."""
    global _pairs
    _pairs = []
    for receive_fd, send_fd in pairs:
        receive, send = socket.socket(fileno=receive_fd), socket.socket(fileno=send_fd)
        send.settimeout(SEND_TIMEOUT)
        _pairs.append((receive, send))


def descriptors() -> list[tuple[int, int]]:
    """Every pair's descriptors (receive, send), for adopt() in a worker started afresh."""
    return [(receive.fileno(), send.fileno()) for receive, send in _pairs]


def attach(slot: int) -> None:
    """In worker `slot`, just after it started: read this worker's messages from now on."""
    global _slot
    _slot = slot
    receive = _pairs[slot][0]
    for index, (other, _send) in enumerate(_pairs):
        if index != slot:
            other.close()  # another worker's receiving end: never read here
    threading.Thread(target=_listen, args=(receive,), name="mailhost-fanout", daemon=True).start()


def active() -> bool:
    """True in a worker of several: the others hear what send() sends."""
    return _slot is not None and len(_pairs) > 1


def worker_slot() -> int | None:
    """This worker's number (0 is the one that runs what runs once), None when not a worker."""
    return _slot


def worker_count() -> int:
    """The number of workers of this server (1 when not one of several)."""
    return len(_pairs) if _slot is not None else 1


def subscribe(topic: str, callback: Subscriber) -> None:
    """Call `callback(message)` (from the reading thread) for each message on `topic` that
    another worker sends."""
    with _lock:
        _subscribers[topic].append(callback)


def send(topic: str, message: dict[str, Any], *, to: int | None = None) -> None:
    """Tell the other workers (or worker `to` only); nothing when this is not a worker of
    several."""
    if not active():
        return
    data = json.dumps([topic, message]).encode()
    if len(data) > MAX_DATAGRAM:
        logger.warning("fanout message on %s too large (%d bytes); not sent", topic, len(data))
        return
    for index, (_receive, sender) in enumerate(_pairs):
        if index == _slot or (to is not None and index != to):
            continue
        try:
            sender.send(data)
        except OSError as exc:  # its queue stayed full: the worker is stuck or restarting
            logger.warning("fanout to worker %d failed: %s", index, exc)


def _listen(receive: socket.socket) -> None:
    while True:
        try:
            # No datagram is larger (send() refuses them). recv allocates what it is asked
            # for before it reads: a 1 MiB ask was an mmap, page faults and a munmap for each
            # delivery hint (9.7 us against 0.9 for the 60 KB ask, a 26-byte hint).
            data = receive.recv(MAX_DATAGRAM)
        except OSError:
            return
        try:
            topic, message = json.loads(data)
        except (ValueError, TypeError):
            continue
        with _lock:
            targets = list(_subscribers.get(topic, ()))
        for callback in targets:
            try:
                callback(message)
            except Exception:
                logger.exception("fanout subscriber for %s failed", topic)

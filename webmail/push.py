"""New mail pushed to open pages: a long-poll fed by the change events (mailboxes/events.py).

Why a long-poll and not server-sent events: the web server is waitress with a small pool of
worker threads (MAILHOST_WEB_THREADS, 8 by default) and a request holds its thread until it
returns. An SSE stream would hold one for as long as a tab is open, so eight open tabs would
stop the webmail for everyone. A long-poll holds a thread only while nothing happens, for at
most HOLD_SECONDS, and returns the moment a change event names the reader's mailbox (the
page then asks again at once), so new mail shows within the time of one request.

Threads are bounded: at most `process_cap()` requests wait at once in this process (half the
pool, so the other half always serves pages) and at most PER_MAILBOX_CAP per mailbox (two
tabs). A request beyond either cap is answered at once, not held, and says so (`held`
false): the page then asks again after FALLBACK_SECONDS, which is the old poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from django.conf import settings

from mailboxes import events

logger = logging.getLogger(__name__)

HOLD_SECONDS = 20  # below common proxy read timeouts (nginx 60 s) and the browser's
PER_MAILBOX_CAP = 2
FALLBACK_SECONDS = 10  # what the page waits after an answer that was not held

_lock = threading.Lock()
_waiting: dict[int, list[threading.Event]] = {}
_held = 0
_unsubscribe = None
_closing = False


def process_cap() -> int:
    return max(1, settings.MAILHOST_WEB_THREADS // 2)


def _on_change(event: events.ChangeEvent) -> None:
    with _lock:
        waiters = list(_waiting.get(event.mailbox_id, ()))
    for waiter in waiters:
        waiter.set()


def _ensure_subscribed() -> None:
    global _unsubscribe
    with _lock:
        if _unsubscribe is not None:
            return
        _unsubscribe = True  # claimed; subscribe outside the lock (it may start a thread)
    _unsubscribe = events.subscribe(_on_change)


@contextlib.contextmanager
def waiter(mailbox_id: int) -> Iterator[threading.Event | None]:
    """An event set when the mailbox changes, registered before the caller reads the state
    (so no change between the read and the wait is missed); None when a cap is reached."""
    global _held
    _ensure_subscribed()
    flag = threading.Event()
    with _lock:
        mine = _waiting.setdefault(mailbox_id, [])
        if _closing or _held >= process_cap() or len(mine) >= PER_MAILBOX_CAP:
            if not mine:
                del _waiting[mailbox_id]
            flag = None
        else:
            mine.append(flag)
            _held += 1
    if flag is None:
        logger.info("webmail push not held mailbox=%s held=%d", mailbox_id, _held)
    else:
        events.watch(mailbox_id)  # the other workers send its events here from now on
    try:
        yield flag
    finally:
        if flag is not None:
            events.unwatch(mailbox_id)
            with _lock:
                _held -= 1
                mine = _waiting.get(mailbox_id, [])
                mine.remove(flag)
                if not mine:
                    _waiting.pop(mailbox_id, None)


def release_all(timeout: float = 2.0) -> None:
    """At shutdown: wake every held wait and give them `timeout` seconds to answer (new
    waits meanwhile are answered at once)."""
    global _closing
    with _lock:
        _closing = True
        waiters = [w for mine in _waiting.values() for w in mine]
    for flag in waiters:
        flag.set()
    deadline = time.monotonic() + timeout
    while held_now() and time.monotonic() < deadline:
        time.sleep(0.02)
    with _lock:
        _closing = False


def held_now() -> int:
    with _lock:
        return _held

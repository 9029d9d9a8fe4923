"""Change events: what changed in which folder, published after commit.

IMAP IDLE, selected IMAP sessions and the webmail listen. Every event is dispatched in the
process that made the change at once; with REDIS_URL set it also travels through Redis pub/sub
so every other process (any front end) hears it; without it, it goes to the other worker
processes of the same server (MAILHOST_PROCESSES) through mailhost/fanout.py: to those that
watch the event's mailbox (watch(), counted in the workers' shared memory), a sign-out to all.
Subscribers are plain callables invoked from a non-event-loop thread or the publishing thread:
an asyncio listener should hand the event over with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace

from django.conf import settings
from django.db import transaction

from mailhost import fanout, listeners, redisconn

logger = logging.getLogger(__name__)

CHANNEL = "mailhost:changes"


def channel() -> str:
    """The pub/sub channel. Redis pub/sub ignores the database number, so the channel names it:
    two Mailhost installations on one Redis server (different databases) do not hear each
    other."""
    from urllib.parse import urlsplit

    path = urlsplit(settings.REDIS_URL or "").path.strip("/")
    return f"{CHANNEL}:{path or '0'}"


@dataclass(frozen=True)
class ChangeEvent:
    mailbox_id: int
    folder_id: int
    # "exists" (new messages), "flags", "expunge", "folders" (created/renamed/deleted),
    # SIGN_OUT (the password changed: the mailbox's protocol sessions end; modseq is the
    # change's time in ns, and sessions signed in after it stay)
    kind: str
    uids: tuple[int, ...] = field(default=())
    modseq: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> ChangeEvent:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict) -> ChangeEvent:
        """The event a to_json() or fanout dict carries (a Redis message's origin left out)."""
        data.pop("origin", None)
        data["uids"] = tuple(data.get("uids") or ())
        return cls(**data)


SIGN_OUT = "signout"

Subscriber = Callable[[ChangeEvent], None]

_lock = threading.Lock()
_subscribers: list[Subscriber] = []
_redis_listener: threading.Thread | None = None
_redis_listener_url: str | None = None


def subscribe(callback: Subscriber) -> Callable[[], None]:
    """Register a callback for every event in this process; returns the unsubscribe function."""
    with _lock:
        _subscribers.append(callback)
    if settings.REDIS_URL:
        _ensure_redis_listener()

    def unsubscribe() -> None:
        with _lock:
            try:
                _subscribers.remove(callback)
            except ValueError:
                pass

    return unsubscribe


# Mailbox id -> what hears its events in this process (IMAP sessions, webmail long-polls), and
# the same counts, by hashed bucket, in this worker's row of the shared "watch" pool, which
# the other workers read before they send an event here (issue 22: a datagram and a wake-up
# of every worker's event loop for each delivery, watched or not).
_watched: Counter[int] = Counter()
_watch_lock = threading.Lock()  # the counts are written from the loop and the web threads


def watch(mailbox_id: int) -> None:
    """Something in this process hears `mailbox_id`'s events from now on, until unwatch().
    Call it before reading the state the events update: an event sent before the other
    worker sees this is of a change committed before it, which that read sees."""
    with _watch_lock:
        _watched[mailbox_id] += 1
        if fanout.active():
            listeners.shared_counts("watch").add(str(mailbox_id), 1)


def unwatch(mailbox_id: int) -> None:
    with _watch_lock:
        _watched[mailbox_id] -= 1
        if _watched[mailbox_id] <= 0:
            del _watched[mailbox_id]
        if fanout.active():
            listeners.shared_counts("watch").add(str(mailbox_id), -1)


def watched_here(mailbox_id: int) -> bool:
    """Whether something in this process watches the mailbox (a dict read: any thread)."""
    return mailbox_id in _watched


def wake_on_exists() -> None:
    """The indexer is about to look for new mail: the next "exists" event of another worker
    is sent here (one, not one per delivery: the sender lowers the flag it takes)."""
    if fanout.active():
        listeners.shared_counts("wake").raise_flag()


def publish(event: ChangeEvent) -> None:
    """Publish once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: _send(event))


def _origin() -> str:
    """This process's name on the Redis channel (a fork gets its own: the pid is in it)."""
    global _origin_name
    if _origin_name is None or _origin_name[0] != os.getpid():
        _origin_name = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}")
    return _origin_name[1]


_origin_name: tuple[int, str] | None = None


_held = threading.local()  # .wires: this thread's Redis messages held by published_together


@contextlib.contextmanager
def published_together() -> Iterator[None]:
    """This thread's events sent to Redis within the block (by the commits it makes) are
    held and published at its end in one round trip (a pipeline), in order; this process's
    own listeners still hear each at once. The group committer's leader commits a batch in
    it: one PUBLISH round trip for the batch's messages, not one each, before its waiters
    answer and the next batch starts."""
    if getattr(_held, "wires", None) is not None:
        yield  # the outer block publishes
        return
    _held.wires = []
    try:
        yield
    finally:
        wires, _held.wires = _held.wires, None
        if wires:
            _publish(wires)


def _publish(wires: list[str]) -> None:
    """PUBLISH each of `wires` on the channel, in order, in one round trip: the commands
    packed and sent together on one of the client's pooled connections and their replies
    read, as redis-py's pipeline sends them, without its command stack, reply callbacks and
    bookkeeping (about 30 us of a batch's CPU); retried as the client retries a command (on
    a lost connection, the connection made again)."""
    try:
        commands = [("PUBLISH", channel(), wire) for wire in wires]
        pool = redisconn.client().connection_pool
        connection = pool.get_connection()
        try:
            connection.retry.call_with_retry(
                lambda: _sent_and_answered(connection, commands),
                lambda _error: connection.disconnect(),
            )
        finally:
            pool.release(connection)
    except Exception:
        logger.exception("publishing change events to Redis failed; only this process heard them")


def _sent_and_answered(connection, commands: list[tuple[str, str, str]]) -> None:  # noqa: ANN001
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        for _ in commands:
            connection.read_response()
    except BaseException:
        connection.disconnect()  # replies may be left unread: the next user starts afresh
        raise


def _fields(event: ChangeEvent) -> dict:
    """asdict(event), without asdict's recursive copy of each field (7 us an event, where
    this is 0.3): the fields are numbers, a string and a tuple of numbers."""
    return {
        "mailbox_id": event.mailbox_id,
        "folder_id": event.folder_id,
        "kind": event.kind,
        "uids": event.uids,
        "modseq": event.modseq,
    }


def _wire(event: ChangeEvent) -> str:
    """The event's Redis message: its fields and this process's name (origin), as JSON."""
    fields = _fields(event)
    fields["origin"] = _origin()
    return json.dumps(fields)


def _send(event: ChangeEvent) -> None:
    # This process's own listeners hear the event at once, before the commit's caller answers
    # (a NOOP on another connection of this server after the STORE's OK sees it); the other
    # processes hear it through Redis, whose listener here skips what this process sent.
    _dispatch(event)
    if settings.REDIS_URL:
        wire = _wire(event)
        held = getattr(_held, "wires", None)
        if held is not None:
            held.append(wire)
        else:
            _publish([wire])
        return
    if fanout.active():
        to = _hearers(event)
        for part in _parts(event) if to else ():
            for worker in to:
                fanout.send(TOPIC, _fields(part), to=worker)


def _hearers(event: ChangeEvent) -> list[int]:
    """The other workers that hear the event: every one for a sign-out (each protocol's
    sessions), else those watching its mailbox, and for new mail an indexer waiting for it."""
    if event.kind == SIGN_OUT:
        return [w for w in range(fanout.worker_count()) if w != fanout.worker_slot()]
    to = listeners.shared_counts("watch").others_with(str(event.mailbox_id))
    if event.kind == "exists":
        to += [w for w in listeners.shared_counts("wake").take_flags() if w not in to]
    return to


# An event's UIDs travel to the other workers in parts of this many (one datagram each).
FANOUT_UIDS = 4000
TOPIC = "change"


def _parts(event: ChangeEvent) -> list[ChangeEvent]:
    if len(event.uids) <= FANOUT_UIDS:
        return [event]
    return [
        replace(event, uids=event.uids[i : i + FANOUT_UIDS])
        for i in range(0, len(event.uids), FANOUT_UIDS)
    ]


def _heard(message: dict) -> None:
    try:
        event = ChangeEvent.from_dict(message)
    except TypeError:
        logger.warning("ignoring malformed change event %r", message)
        return
    _dispatch(event)


fanout.subscribe(TOPIC, _heard)


def _dispatch(event: ChangeEvent) -> None:
    with _lock:
        targets = list(_subscribers)
    for callback in targets:
        try:
            callback(event)
        except Exception:
            logger.exception("change event subscriber failed")


def _ensure_redis_listener() -> None:
    """One listener thread per process (per REDIS_URL), subscribed before this returns."""
    global _redis_listener, _redis_listener_url
    url = settings.REDIS_URL
    with _lock:
        if (
            _redis_listener is not None
            and _redis_listener.is_alive()
            and _redis_listener_url == url
        ):
            return
        ready = threading.Event()
        _redis_listener_url = url
        _redis_listener = threading.Thread(
            target=_listen_redis,
            args=(url, channel(), ready),
            name="mailhost-events",
            daemon=True,
        )
        _redis_listener.start()
    ready.wait(5)


def _listen_redis(url: str, name: str, ready: threading.Event) -> None:
    import time

    import redis

    while _redis_listener_url == url:
        try:
            client = redis.Redis.from_url(url)
            pubsub = client.pubsub()
            pubsub.subscribe(name)
            # Wait for the server's confirmation: an event published before it would be lost.
            while True:
                message = pubsub.get_message(timeout=5)
                if message is not None and message.get("type") == "subscribe":
                    break
            ready.set()
            for message in pubsub.listen():
                if _redis_listener_url != url:
                    break
                if message.get("type") == "message":
                    try:
                        data = json.loads(message["data"])
                        if data.get("origin") == _origin():
                            continue  # dispatched here when it was sent
                        _dispatch(ChangeEvent.from_dict(data))
                    except (ValueError, TypeError, AttributeError):
                        logger.warning("ignoring malformed change event %r", message["data"])
            pubsub.close()
        except Exception:
            logger.exception("Redis change-event listener lost its connection; reconnecting")
            ready.set()
            time.sleep(1)

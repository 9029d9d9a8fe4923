"""The process's Redis client for REDIS_URL (one connection pool per URL, made on first use).

What several front ends and workers share through Redis takes its client here: change events
(mailboxes/events.py), the POP3 lease (protocols/pop3/lease.py), the login limiter
(mailboxes/throttle.py) and the sweeper's leadership (delivery/leader.py). RQ keeps its own
(django_rq's queue connection). Nothing connects at import time.
"""

from __future__ import annotations

import threading

from django.conf import settings

_lock = threading.Lock()
_clients: dict[str, object] = {}


def client():  # noqa: ANN201 - a redis.Redis
    """The client for settings.REDIS_URL (which must be set)."""
    url = settings.REDIS_URL
    with _lock:
        found = _clients.get(url)
        if found is None:
            import redis

            # Timeouts: a Redis that stops answering fails the caller in seconds (each caller
            # has a fallback or a retry) instead of hanging a session or the sweeper.
            found = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
            )
        return found


# Leases held as a key whose value names the holder: renewed and given back only by it.
_EXPIRE_IF = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_DELETE_IF = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def expire_if_held(key: str, holder: str, ms: int) -> bool:
    """Give `key` a TTL of `ms` if its value is `holder`; False when it is not."""
    return bool(client().eval(_EXPIRE_IF, 1, key, holder, ms))


def delete_if_held(key: str, holder: str) -> bool:
    """Delete `key` if its value is `holder`."""
    return bool(client().eval(_DELETE_IF, 1, key, holder))

"""One leader among the delivery processes, for the work that should run once at a time: the
spool sweep, housekeeping (late DSNs, pruning, blob garbage collection, aggregate reports)
and full-text indexing.

With REDIS_URL every `manage.py rqworker` (and every runmail or runworker) runs a sweeper;
the leader is whichever holds the Redis key LEADER_KEY. A sweeper takes the key when it is
free (SET NX with a TTL) and renews it while it is its own (a Lua compare-and-expire), each
pass; the others skip their passes. A leader that dies stops renewing, and the first sweeper
to pass after the TTL leads instead; one that stops cleanly gives the key back at once. The
TTL is three sweep intervals (at least LEADER_MIN_SECONDS): a pass that runs longer than
that may overlap the next leader's, which is harmless (the sweep and housekeeping are safe
to run twice: jobs lease their recipients, DSNs are marked sent in the row) but wasted.

Without REDIS_URL there is one machine and no election: every sweeper leads its own share
(MAILHOST_DELIVERY_SHARE).
"""

from __future__ import annotations

import logging
import secrets

from django.conf import settings

from mailhost import redisconn

logger = logging.getLogger(__name__)

LEADER_KEY = "mailhost:delivery:leader"
LEADER_MIN_SECONDS = 5.0

_HOLD = """
local holder = redis.call('get', KEYS[1])
if holder == false then
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
if holder == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return 1
end
return 0
"""


def lease_seconds() -> float:
    return max(LEADER_MIN_SECONDS, 3 * settings.MAILHOST_SWEEP_INTERVAL)


class Leadership:
    """This process's claim to lead; `hold()` before each pass of once-only work."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.leading = False

    def hold(self) -> bool:
        """Take or renew the lead; True while this process leads. A Redis that cannot be
        reached makes nobody the leader (the passes wait for it, as the queue does)."""
        if not settings.REDIS_URL:
            self.leading = True
            return True
        try:
            ms = int(lease_seconds() * 1000)
            leading = bool(redisconn.client().eval(_HOLD, 1, LEADER_KEY, self.token, ms))
        except Exception as exc:
            logger.warning("sweeper: cannot reach Redis to hold the lead (%s)", exc)
            leading = False
        if leading != self.leading:
            logger.info("sweeper: %s", "leading" if leading else "another process leads")
        self.leading = leading
        return leading

    def is_leading(self) -> bool:
        """As of the last hold() (always, without REDIS_URL)."""
        return self.leading or not settings.REDIS_URL

    def release(self) -> None:
        """Give the lead back (a clean stop): another process takes it at its next pass."""
        was, self.leading = self.leading, False
        if not (settings.REDIS_URL and was):
            return
        try:
            redisconn.delete_if_held(LEADER_KEY, self.token)
        except Exception as exc:
            logger.warning("sweeper: could not give the lead back (%s)", exc)

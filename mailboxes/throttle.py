"""One limiter for password guessing on every protocol (SMTP AUTH, IMAP, POP3, webmail, admin).

Built the way Dovecot's auth penalty and fail2ban work together, so that guessing is slowed
without letting a stranger lock a user out (the old limiter counted failures per client IP: a
few made-up logins from behind a NAT made every user of that NAT wait minutes).

Failures are counted in a sliding window (WINDOW_SECONDS) under four keys:

- (address, client IP): the pair's own failures delay its next attempt (doubling, capped);
- address, across client IPs: a guess spread over many IPs is slowed on the address;
- client IP, failures for addresses that do not exist: a budget (UNKNOWN_ADDRESS_BUDGET),
  past which the IP is slowed on every address it tries (a scanner);
- client IP, all failures: a larger budget (CLIENT_FAILURE_BUDGET) against one IP spraying a
  password over many real addresses.

A pair that has logged in successfully before ("known", remembered KNOWN_CLIENT_SECONDS)
counts only its own failures, and waits at most KNOWN_CLIENT_MAX_DELAY: a correct password
from a place the user has used never waits on other people's failures. A known pair that fails
KNOWN_CLIENT_FORFEIT times in the window is treated as a stranger again.

A delay is a "not before" time per key: the next attempt under a key may start PENALTY(n)
after the previous one (n its failures). admit() reserves that slot, so parallel connections
are serialised instead of all passing at once, and says how long to wait; beyond the caller's
max_wait the attempt is refused without checking the password (the webmail answers 429 with
Retry-After, the protocols a temporary failure). Sessions await the wait (asyncio.sleep),
the web app sleeps in its worker thread: never on an event loop.

With REDIS_URL the counters live in Redis (one JSON value per key, expiring after the window;
known pairs after KNOWN_CLIENT_SECONDS), so that every front end behind a balancer applies the
same limits; each attempt reads its keys and writes them back in a WATCH/MULTI transaction
(three round trips). Without it, or when Redis fails, state is in this process (bounded:
MAX_TRACKED_KEYS, MAX_KNOWN_CLIENTS), and in every worker process of the same server
(MAILHOST_PROCESSES), which tell each other what they record. fail2ban, fed by the `auth
failure` log lines written here (contrib/fail2ban/), bans across servers and restarts.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from mailhost import fanout, metrics, redisconn

T = TypeVar("T")

logger = logging.getLogger("mailboxes.auth")

WINDOW_SECONDS = 900  # failures older than this are forgotten
BASE_DELAY = 1.0  # the first penalty, doubled per further failure
MAX_DELAY = 15.0  # Dovecot's auth penalty caps at 15 s too
PAIR_FREE_FAILURES = 2  # typos from one place before any delay
ADDRESS_FREE_FAILURES = 10  # failures on one address, all IPs together
UNKNOWN_ADDRESS_BUDGET = 10  # failures for addresses that do not exist, per client IP
CLIENT_FAILURE_BUDGET = 30  # failures on any address, per client IP
KNOWN_CLIENT_SECONDS = 30 * 86400  # how long a successful (address, IP) stays "known"
KNOWN_CLIENT_MAX_DELAY = 1.0  # the most a known pair ever waits
KNOWN_CLIENT_FORFEIT = 10  # a known pair failing this often is a stranger again
MAX_TRACKED_KEYS = 100_000  # counters kept; the least recently used go first
MAX_KNOWN_CLIENTS = 100_000
MAX_COUNTED = 64  # failures kept per key (the penalty is capped long before)
MAX_ADDRESS_LENGTH = 320
REDIS_PREFIX = "mailhost:auth:"

# Wall-clock seconds: with REDIS_URL the times are compared across machines. Tests may
# replace it.
clock = time.time


def penalty(failures: int, free: int) -> float:
    """Seconds between attempts under a key with this many recent failures."""
    if failures < free:
        return 0.0
    return min(MAX_DELAY, BASE_DELAY * 2 ** min(failures - free, 16))


@dataclass(frozen=True)
class Admission:
    wait: float  # seconds to wait before checking the password
    admitted: bool  # False: refused without checking; retry after `wait` seconds


class _Counter:
    __slots__ = ("failures", "next_at")

    def __init__(self) -> None:
        self.failures: deque[float] = deque(maxlen=MAX_COUNTED)
        self.next_at = 0.0

    def recent(self, now: float) -> int:
        while self.failures and self.failures[0] <= now - WINDOW_SECONDS:
            self.failures.popleft()
        return len(self.failures)


_lock = threading.Lock()
_counters: OrderedDict[tuple[str, ...], _Counter] = OrderedDict()
_known: OrderedDict[tuple[str, str], float] = OrderedDict()

Key = tuple[str, ...]


def _address(user: str | None) -> str:
    return (user or "").strip().lower()[:MAX_ADDRESS_LENGTH]


class _LocalState:
    """This process's counters: the limiter without REDIS_URL (and when Redis fails)."""

    def counter(self, key: Key, create: bool) -> _Counter | None:
        counter = _counters.get(key)
        if counter is None and create:
            counter = _counters[key] = _Counter()
            while len(_counters) > MAX_TRACKED_KEYS:
                _counters.popitem(last=False)
        if counter is not None:
            _counters.move_to_end(key)
        return counter

    def forget(self, key: Key) -> None:
        _counters.pop(key, None)

    def known_since(self, pair: tuple[str, str]) -> float | None:
        return _known.get(pair)

    def remember(self, pair: tuple[str, str], now: float) -> None:
        _known[pair] = now
        _known.move_to_end(pair)
        while len(_known) > MAX_KNOWN_CLIENTS:
            _known.popitem(last=False)


class _SharedState:
    """The counters of one attempt's keys, read from Redis and written back if changed: with
    REDIS_URL every front end counts the same failures (a guess spread over the front ends of
    a balancer is slowed as if it met one). The rules run here on a copy, under WATCH, and
    their writes go in one MULTI/EXEC: a concurrent change to any of the keys retries."""

    def __init__(self, values: dict[str, bytes | None]) -> None:
        self.values = values
        self.loaded: dict[Key, _Counter | None] = {}
        self.writes: dict[str, str | None] = {}

    @staticmethod
    def name(key: Key | tuple[str, str, str]) -> str:
        # Unit separators: an address cannot forge another key's name.
        return REDIS_PREFIX + "\x1f".join(key)

    def counter(self, key: Key, create: bool) -> _Counter | None:
        if key not in self.loaded:
            counter = None
            if (raw := self.values.get(self.name(key))) is not None:
                data = json.loads(raw)
                counter = _Counter()
                counter.failures.extend(data["f"])
                counter.next_at = data["n"]
            self.loaded[key] = counter
        counter = self.loaded[key]
        if counter is None and create:
            counter = self.loaded[key] = _Counter()
        return counter

    def forget(self, key: Key) -> None:
        self.loaded[key] = None
        self.writes[self.name(key)] = None

    def known_since(self, pair: tuple[str, str]) -> float | None:
        raw = self.values.get(self.name(("known", *pair)))
        return None if raw is None else float(raw)

    def remember(self, pair: tuple[str, str], now: float) -> None:
        self.writes[self.name(("known", *pair))] = repr(now)

    def write(self, pipe) -> None:  # a redis pipeline, in MULTI
        for key, counter in self.loaded.items():
            name = self.name(key)
            if counter is not None and name not in self.writes:
                data = {"f": list(counter.failures), "n": counter.next_at}
                pipe.set(name, json.dumps(data), ex=WINDOW_SECONDS + int(4 * MAX_DELAY))
        for name, value in self.writes.items():
            if value is None:
                pipe.delete(name)
            else:
                pipe.set(name, value, ex=KNOWN_CLIENT_SECONDS)


State = _LocalState | _SharedState


def _transact(
    address: str, ip: str, rules: Callable[[State], T], *, write: bool = True
) -> tuple[T, bool]:
    """Run `rules` on the state of this (address, IP): shared through Redis with REDIS_URL,
    else (or when Redis fails: logins go on, limited per process) this process's. Returns
    their result, and whether the state was the shared one (else the caller tells the other
    worker processes of this server what it recorded)."""
    if settings.REDIS_URL:
        try:
            return _shared(address, ip, rules, write), True
        except Exception as exc:
            logger.warning("login limiter: Redis failed (%s); counting in this process", exc)
    with _lock:
        return rules(_LocalState()), False


def _shared(address: str, ip: str, rules: Callable[[_SharedState], T], write: bool) -> T:
    import redis

    names = [_SharedState.name(key) for key in _keys(address, ip)]
    names.append(_SharedState.name(("known", address, ip)))
    if not write:
        values = redisconn.client().mget(names)
        return rules(_SharedState(dict(zip(names, values, strict=True))))
    with redisconn.client().pipeline() as pipe:
        while True:
            try:
                pipe.watch(*names)
                state = _SharedState(dict(zip(names, pipe.mget(names), strict=True)))
                result = rules(state)
                pipe.multi()
                state.write(pipe)
                pipe.execute()
                return result
            except redis.WatchError:
                continue


def _free(key: Key) -> int:
    """Failures under this key before its attempts wait (read when asked: tests scale them)."""
    return {
        "pair": PAIR_FREE_FAILURES,
        "address": ADDRESS_FREE_FAILURES,
        "unknown": UNKNOWN_ADDRESS_BUDGET,
        "client": CLIENT_FAILURE_BUDGET,
    }[key[0]]


def _keys(address: str, ip: str) -> list[Key]:
    keys = [("pair", address, ip), ("address", address)]
    if ip:
        keys += [("unknown", ip), ("client", ip)]
    return keys


def _rules(state: State, address: str, ip: str, now: float) -> tuple[list[Key], float]:
    """The keys that govern an attempt, and the cap on its wait."""
    keys = _keys(address, ip)
    since = state.known_since((address, ip))
    if since is not None and since > now - KNOWN_CLIENT_SECONDS:
        counter = state.counter(keys[0], create=False)
        if counter is None or counter.recent(now) < KNOWN_CLIENT_FORFEIT:
            return keys[:1], KNOWN_CLIENT_MAX_DELAY
    return keys, float("inf")


def _wait(state: State, keys: list[Key], now: float) -> float:
    wait = 0.0
    for key in keys:
        counter = state.counter(key, create=False)
        if counter is not None:
            wait = max(wait, counter.next_at - now)
    return wait


def wait_for(user: str | None, client_ip: str | None) -> float:
    """Seconds the next attempt of this user from this client would wait (nothing reserved)."""
    address, ip, now = _address(user), client_ip or "", clock()

    def rules(state: State) -> float:
        keys, cap = _rules(state, address, ip, now)
        return min(_wait(state, keys, now), cap)

    return _transact(address, ip, rules, write=False)[0]


def admit(user: str | None, client_ip: str | None, *, max_wait: float | None = None) -> Admission:
    """Ask to check a password now. Admitted: wait `wait` seconds, then check; the slot after
    it is reserved for the next attempt. Refused (the wait exceeds max_wait, MAX_DELAY unless
    given): do not check, and tell the client to retry after `wait` seconds."""
    # The time of the ask: a wait counted from before the state is read errs on the long side.
    address, ip, now = _address(user), client_ip or "", clock()
    if max_wait is None:
        max_wait = MAX_DELAY

    def rules(state: State) -> Admission:
        keys, cap = _rules(state, address, ip, now)
        wait = min(_wait(state, keys, now), cap)
        if wait > max_wait:
            return Admission(wait=wait, admitted=False)
        _reserve(state, address, ip, now, wait)
        return Admission(wait=wait, admitted=True)

    admission, shared = _transact(address, ip, rules)
    if admission.admitted and not shared:
        _tell("reserve", address, ip, now, wait=admission.wait)
    return admission


def _reserve(state: State, address: str, ip: str, now: float, wait: float) -> None:
    keys, cap = _rules(state, address, ip, now)
    for key in keys:
        counter = state.counter(key, create=False)
        if counter is not None:
            step = min(penalty(counter.recent(now), _free(key)), cap)
            counter.next_at = max(counter.next_at, now + wait + step)


def record_failure(user: str | None, client_ip: str | None, *, user_exists: bool) -> None:
    """A checked password was wrong (or the address does not exist: user_exists False)."""
    address, ip = _address(user), client_ip or ""

    def rules(state: State) -> float:
        now = clock()  # once the state is read: as close to the write as can be
        _failure(state, address, ip, now, user_exists)
        return now

    now, shared = _transact(address, ip, rules)
    if not shared:
        _tell("failure", address, ip, now, user_exists=user_exists)


def _failure(state: State, address: str, ip: str, now: float, user_exists: bool) -> None:
    for key in _keys(address, ip):
        if key[0] == "unknown" and user_exists:
            continue
        counter = state.counter(key, create=True)
        counter.failures.append(now)
        step = penalty(counter.recent(now), _free(key))
        counter.next_at = max(counter.next_at, now + step)


def record_success(user: str | None, client_ip: str | None) -> None:
    """The pair becomes known; its own failures are forgiven. The address's failures from
    elsewhere stay: someone may still be guessing it."""
    address, ip = _address(user), client_ip or ""
    if not address:
        return

    def rules(state: State) -> float:
        now = clock()  # once the state is read: as close to the write as can be
        _success(state, address, ip, now)
        return now

    now, shared = _transact(address, ip, rules)
    if not shared:
        _tell("success", address, ip, now)


def _success(state: State, address: str, ip: str, now: float) -> None:
    state.forget(("pair", address, ip))
    state.remember((address, ip), now)


# --- Several worker processes of one server (MAILHOST_PROCESSES) without Redis: each tells
# the others what it recorded, with its own clock reading, and each applies what it hears,
# so a guesser gains nothing by landing on another process.

TOPIC = "login"


def _tell(op: str, address: str, ip: str, now: float, **extra: object) -> None:
    if fanout.active():
        fanout.send(TOPIC, {"op": op, "address": address, "ip": ip, "now": now, **extra})


def _heard(message: dict) -> None:
    try:
        op, address, ip, now = message["op"], message["address"], message["ip"], message["now"]
        with _lock:
            state = _LocalState()
            if op == "failure":
                _failure(state, address, ip, now, bool(message["user_exists"]))
            elif op == "success":
                _success(state, address, ip, now)
            elif op == "reserve":
                _reserve(state, address, ip, now, float(message["wait"]))
    except (KeyError, TypeError, ValueError):
        logger.warning("ignoring malformed limiter message %r", message)


fanout.subscribe(TOPIC, _heard)


def reset() -> None:
    """Forget every failure and known client (tests); with REDIS_URL, the shared ones too."""
    with _lock:
        _counters.clear()
        _known.clear()
    if settings.REDIS_URL:
        client = redisconn.client()
        for name in client.scan_iter(f"{REDIS_PREFIX}*", count=1000):
            client.delete(name)


# Log lines (one per event; fail2ban's filter in contrib/fail2ban/ reads the failures).
_PLAIN_VALUE = re.compile(r"[\x21\x23-\x7e\u00a0-\uffff]+")


def log_value(value: str | None) -> str:
    """A key=value value: as it is when it is plain, else quoted with escapes (a user name is
    the client's text; a CR/LF in it must not start a forged line)."""
    value = (value or "")[:MAX_ADDRESS_LENGTH]
    if _PLAIN_VALUE.fullmatch(value) and "\\" not in value:
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return f'"{escaped}"'


def login_result(
    *, protocol: str, user: str | None, client_ip: str | None, succeeded: bool, user_exists: bool
) -> None:
    """Record a checked login in the limiter and log it: the one place every protocol's
    logins and failures go through."""
    fields = f"protocol={protocol} client={log_value(client_ip)} user={log_value(user)}"
    if succeeded:
        record_success(user, client_ip)
        logger.info("auth success %s", fields)
    else:
        record_failure(user, client_ip, user_exists=user_exists)
        logger.info("auth failure %s", fields)
    metrics.login(protocol=protocol, result="success" if succeeded else "failure")


def login_refused(*, protocol: str, user: str | None, client_ip: str | None, wait: float) -> None:
    """Log an attempt refused by the limiter (its password was not checked)."""
    metrics.login(protocol=protocol, result="throttled")
    logger.info(
        "auth throttled protocol=%s client=%s user=%s retry=%ds",
        protocol,
        log_value(client_ip),
        log_value(user),
        int(wait + 0.999),
    )

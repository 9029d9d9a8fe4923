"""Hostile clients over real sockets against the SMTP, IMAP and POP3 listeners.

- Hypothesis-generated garbage lines (random bytes, NUL, invalid UTF-8, grammar fragments,
  over-long lines) each on a fresh connection: the server answers in its protocol (SMTP
  reply codes, IMAP tagged/untagged BAD, POP3 -ERR), never crashes, and a well-behaved
  client is served right after. MAILHOST_FUZZ_EXAMPLES sets the count (default 100 per
  protocol; see tests/security/test_hostile_parsers.py for the full-run command).
- Slowloris: a client that sends one byte every half second and never finishes a line is
  cut off by the timeout (set to 2 s here) on every listener; it does not hold the
  connection for ever by trickling.
"""

from __future__ import annotations

import os
import re
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhost import runner
from tests.support.servers import running

EXAMPLES = int(os.environ.get("MAILHOST_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW_TIMEOUT = 2

REPLY = {
    "smtp": re.compile(rb"^[2-5]\d\d[ -]"),
    "imap": re.compile(rb"^(\* |\+ |[A-Za-z0-9.]+ )"),
    "pop3": re.compile(rb"^(\+OK|-ERR|\+ )"),
}
PIECES = {
    "smtp": [b"EHLO x", b"MAIL FROM:<", b"RCPT TO:<", b"DATA", b"BDAT 99999999999", b"AUTH "],
    "imap": [b"a LOGIN ", b"a APPEND INBOX {", b"a SELECT ", b"(", b"{99999999}", b"a "],
    "pop3": [b"USER ", b"PASS ", b"AUTH PLAIN ", b"RETR ", b"TOP 1 ", b"APOP "],
}
COMMON = [b"\x00", b"\xff\xfe", b"\xc3\x28", b"\r", b" ", b"<>", b"@", b"\\", b'"', b"%"]


@pytest.fixture(scope="module")
def listeners(django_db_blocker):
    from django.conf import settings as django_settings

    saved = {}
    overrides = {
        "MAILHOST_BIND": "127.0.0.1",
        "MAILHOST_HOSTNAME": "mx.test.example",
        "MAILHOST_SMTP_COMMAND_TIMEOUT": SLOW_TIMEOUT,
        "MAILHOST_SMTP_DATA_TIMEOUT": SLOW_TIMEOUT,
        "MAILHOST_IMAP_PREAUTH_TIMEOUT": SLOW_TIMEOUT,
        "MAILHOST_POP3_IDLE_TIMEOUT": SLOW_TIMEOUT,
        "MAILHOST_MAX_CONNECTIONS_PER_IP": 10_000,
    }
    for name in (
        "SMTP",
        "SUBMISSION",
        "SUBMISSIONS",
        "IMAP",
        "IMAPS",
        "POP3",
        "POP3S",
        "MANAGESIEVE",
        "WEB",
    ):
        overrides[f"MAILHOST_{name}_PORT"] = 0
    for key, value in overrides.items():
        saved[key] = getattr(django_settings, key)
        setattr(django_settings, key, value)
    try:
        with django_db_blocker.unblock(), running(runner.SMTP, runner.IMAP, runner.POP3) as ports:
            yield ports
    finally:
        for key, value in saved.items():
            setattr(django_settings, key, value)


QUIT = {"smtp": b"QUIT\r\n", "imap": b"zq LOGOUT\r\n", "pop3": b"QUIT\r\n"}


def exchange(port: int, payload: bytes, *, timeout: float = 3) -> list[bytes]:
    """Greeting, payload, then every line until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        data = b""
        try:
            sock.sendall(payload)
            while chunk := sock.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
    return data.split(b"\r\n")


def healthy(ports) -> None:
    """A well-behaved client is served on every listener."""
    for name, command, ok in (
        ("smtp", b"NOOP\r\nQUIT\r\n", b"250 "),
        ("imap", b"a NOOP\r\na LOGOUT\r\n", b"a OK"),
        ("pop3", b"CAPA\r\nQUIT\r\n", b"+OK"),
    ):
        lines = exchange(ports[name], command)
        assert any(line.startswith(ok) for line in lines[1:]), (name, lines)


def garbage(protocol: str):
    piece = st.sampled_from(PIECES[protocol] + COMMON)
    line = st.lists(st.one_of(piece, st.binary(max_size=30)), max_size=12).map(b"".join)
    long_line = st.integers(min_value=1000, max_value=200_000).map(lambda n: b"A" * n)
    lines = st.lists(st.one_of(line, long_line), min_size=1, max_size=6)
    return lines.map(lambda ls: b"".join(x.replace(b"\n", b"") + b"\r\n" for x in ls))


def _check(ports, protocol: str, payload: bytes) -> None:
    lines = exchange(ports[protocol], payload + QUIT[protocol])
    assert REPLY[protocol].match(lines[0]), (protocol, lines[:3])  # the greeting
    for line in lines[1:]:
        if line:
            assert REPLY[protocol].match(line) or protocol == "imap", (protocol, line[:200])


@FUZZ
@given(payload=garbage("smtp"))
def test_smtp_garbage_over_a_socket(listeners, payload):
    _check(listeners, "smtp", payload)


@FUZZ
@given(payload=garbage("imap"))
def test_imap_garbage_over_a_socket(listeners, payload):
    _check(listeners, "imap", payload)


@FUZZ
@given(payload=garbage("pop3"))
def test_pop3_garbage_over_a_socket(listeners, payload):
    _check(listeners, "pop3", payload)


def test_every_listener_still_serves_after_the_garbage(listeners):
    healthy(listeners)


@pytest.mark.parametrize(
    "protocol,opening",
    [
        ("smtp", b"EHLO slow.example\r\nMAIL FROM:<a@b.example"),
        ("smtp", b"HELO"),
        ("imap", b"a1 LOGIN alice@example.org "),
        ("pop3", b"USER alice@example"),
    ],
)
def test_slowloris_is_cut_off(listeners, protocol, opening):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", listeners[protocol]), timeout=10) as sock:
        sock.recv(4096)  # greeting
        closed_after = None
        for byte in [opening[i : i + 1] for i in range(len(opening))] + [b"x"] * 200:
            try:
                sock.sendall(byte)
                sock.settimeout(0.5)
                data = sock.recv(4096)
                if data == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass  # nothing to read: keep trickling
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            if time.monotonic() - started > 6 * SLOW_TIMEOUT:
                break
    assert closed_after is not None, f"{protocol}: a trickling client held on for good"
    assert closed_after < 3 * SLOW_TIMEOUT + 1, closed_after
    healthy(listeners)

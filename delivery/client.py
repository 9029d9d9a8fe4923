"""The outbound SMTP client: one connection per destination for all of its recipients.

`deliver(hosts, envelope)` tries the destination's hosts in order (MX by MX, address by
address) until one takes the transaction, and returns one `Reply` per recipient. It speaks
ESMTP (RFC 5321) with opportunistic STARTTLS (RFC 3207, RFC 7435), SIZE (RFC 1870),
8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), PIPELINING (RFC 2920) and DSN (RFC 3461), and AUTH
PLAIN (RFC 4954) towards a smart host.
"""

from __future__ import annotations

import _ssl
import base64
import errno
import io
import ipaddress
import logging
import os
import re
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from delivery.dns import MXHost

logger = logging.getLogger(__name__)

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # the reply text, lines joined with a space, enhanced code included
    remote: str = ""  # the host that gave it ("" for our own verdicts)

    @property
    def enhanced(self) -> str:
        match = _ENHANCED.match(self.text)
        if match and match.group(1) == str(self.code)[0]:
            return match.group(0)
        return {2: "2.0.0", 4: "4.0.0", 5: "5.0.0"}.get(self.code // 100, "4.0.0")

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        if _ENHANCED.match(self.text):
            return f"{self.code} {self.text}"
        return f"{self.code} {self.enhanced} {self.text}".rstrip()


@dataclass(frozen=True)
class RecipientEnvelope:
    address: str
    notify: str = ""
    orcpt: str = ""


@dataclass
class Envelope:
    mail_from: str
    recipients: Sequence[RecipientEnvelope]
    data: bytes
    envid: str = ""
    ret: str = ""
    smtputf8: bool = False
    body_8bit: bool = False
    require_tls: bool = False  # RFC 8689 REQUIRETLS


@dataclass(frozen=True)
class HostSecurity:
    """What a session with one MX host must achieve (delivery/tlspolicy.py decides).

    `protection` is the aim: "dane" (TLSA records to match), "mta-sts" (a certificate valid
    for the MX name), "tls" (opportunistic: encrypt if offered, verify nothing), or
    "refused" (do not connect: `reason` says why). With `enforce`, a failure to reach the aim
    ends the session (a temporary failure: the next host, later a retry), never a fallback
    to less; without it (MTA-STS testing) the session falls back to opportunistic TLS."""

    protection: str = "tls"
    enforce: bool = False
    dane: object | None = None  # delivery.dane.DaneHost
    reason: str = ""
    # delivery.outreports.tlsrpt.PolicyKey: where the session's TLS outcome is counted for
    # the recipient domain's TLS report (RFC 8460); None: not counted.
    tlsrpt: object | None = None

    def aim(self) -> tuple:
        """What a session is opened for: every field but the TLS report's counter (a cached
        session serves the same aim whichever report counts it). A tuple of the fields, not
        the repr of a copy without tlsrpt (dataclasses.replace and repr: 2.8 us a message)."""
        return (self.protection, self.enforce, self.dane, self.reason)


OPPORTUNISTIC = HostSecurity()


@dataclass
class Delivery:
    """What one attempt at a destination produced: a reply per recipient address."""

    replies: dict[str, Reply] = field(default_factory=dict)
    peer_dsn: bool = False  # the accepting peer took over DSN duties (RFC 3461 4.4)
    # Seconds until an address is worth trying again, when none was tried this time (each
    # was unreachable moments ago): the attempt is not counted. None: something was tried.
    untried_for: float | None = None
    address: str = ""  # the IP address of the host that gave the replies ("" for none)
    protection: str = ""  # what protected the session that gave them (models.Protection)
    throttled: bool = False  # a peer answered 421 or 4.7.x (is_throttling)
    transacted: bool = True  # False: no host took a transaction (the replies are ours)


class SMTPError(Exception):
    """The session failed before the transaction finished (connection, greeting, EHLO...)."""

    def __init__(self, reply: Reply, *, try_next: bool = True):
        super().__init__(str(reply))
        self.reply = reply
        self.try_next = try_next
        self.throttled = False  # the session saw a 421 or 4.7.x from the peer


class ConnectFailed(OSError):
    """No TCP connection (refused, unreachable, timed out)."""


# An address that could not be reached is skipped for this long: a backlog for a dead or
# blackholed MX then waits in the queue instead of costing each message a connect timeout.
UNREACHABLE_MEMO = 60.0
_unreachable: dict[tuple[str, int], float] = {}
_unreachable_lock = threading.Lock()


def _unreachable_for(address: str, port: int) -> float:
    """Seconds this address stays skipped (0: try it)."""
    with _unreachable_lock:
        until = _unreachable.get((address, port))
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del _unreachable[(address, port)]
            return 0.0
        return left


def _mark_unreachable(address: str, port: int) -> None:
    with _unreachable_lock:
        _unreachable[(address, port)] = time.monotonic() + UNREACHABLE_MEMO


def forget_unreachable() -> None:
    with _unreachable_lock:
        _unreachable.clear()


def source_address(peer: str) -> tuple[str, int] | None:
    """MAILHOST_OUTBOUND_BIND's address of the peer's family to connect from, or None (the
    system chooses)."""
    family = ipaddress.ip_address(peer).version if _is_ip_literal(peer) else 4
    for address in settings.MAILHOST_OUTBOUND_BIND:
        if ipaddress.ip_address(address).version == family:
            return (address, 0)
    return None


def _temp(text: str, remote: str = "") -> Reply:
    return Reply(451, text, remote)


def _kernel_timeouts(sock: socket.socket, seconds: float) -> None:
    """The socket blocking, its timeout kept by the kernel (SO_RCVTIMEO, SO_SNDTIMEO). With
    a timeout of Python's (settimeout) every send and receive is a poll() and then the call,
    each giving up the GIL and waiting to take it back: under load, with the process's other
    threads running, a delivery thread waited milliseconds for the GIL after a reply had come
    before it even read it, several times a message."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


class _Replies(socket.SocketIO):
    """The socket's reads for a buffered reader: SocketIO takes EAGAIN, which a blocking
    socket only returns once SO_RCVTIMEO ran out, for "no data yet" and the reader then for
    the end of the stream; here it is the timeout it is."""

    def readinto(self, buffer) -> int:  # noqa: ANN001
        count = super().readinto(buffer)
        if count is None:
            raise TimeoutError("timed out")
        return count


def _reader(sock: socket.socket) -> io.BufferedReader:
    return io.BufferedReader(_Replies(sock, "rb"))


class Connection:
    """A blocking SMTP client connection; replies are read line by line."""

    def __init__(
        self, address: str, port: int, *, remote_name: str, sock: socket.socket | None = None
    ) -> None:
        self.remote = remote_name
        self.address = address
        if sock is None:
            try:
                sock = socket.create_connection(
                    (address, port),
                    timeout=settings.MAILHOST_OUTBOUND_CONNECT_TIMEOUT,
                    source_address=source_address(address),
                )
            except OSError as exc:
                raise ConnectFailed(str(exc)) from exc
        self.sock = sock
        _kernel_timeouts(sock, settings.MAILHOST_OUTBOUND_TIMEOUT)
        self.local_address = self.sock.getsockname()[0]  # sending-mta-ip of a TLS report
        self.file = _reader(sock)
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.protection = "plain"
        self.transactions = 0  # messages sent over this connection
        # A MAIL the peer took whose transaction no reply to the data ended (refused
        # recipients, a refused DATA): the next message over the session starts with RSET.
        self.transaction_open = False
        # The peer said 421 or 4.7.x ("slow down"): the destination is throttled.
        self.throttled = False

    def close(self) -> None:
        for thing in (self.file, self.sock):
            try:
                thing.close()
            except OSError:
                pass

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except BlockingIOError:  # SO_SNDTIMEO ran out (_kernel_timeouts)
            raise TimeoutError("timed out") from None

    def command(self, line: str) -> Reply:
        self.send(line.encode("utf-8") + b"\r\n")
        return self.read_reply()

    def read_reply(self) -> Reply:
        raw = self.file.readline(2048)
        if raw[3:4] == b" " and raw[:3].isdigit():
            # A last line first, as "250 2.0.0 OK\r\n" (four a message): its text without
            # _read_lines' list and join, the same text.
            text = raw[4:].decode("utf-8", "replace").rstrip("\r\n")
            reply = Reply(int(raw[:3]), text, self.remote)
        else:
            reply = self._read_lines(raw)
        if is_throttling(reply):
            self.throttled = True
        return reply

    def _read_lines(self, raw: bytes) -> Reply:
        """read_reply's other replies: several lines, or a line that is none (raises)."""
        lines: list[str] = []
        code = 0
        while True:
            if not raw:
                raise SMTPError(_temp("4.4.2 connection closed by the peer", self.remote))
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise SMTPError(_temp(f"4.5.0 bad reply from the peer: {line[:80]!r}", self.remote))
            code = int(line[:3])
            lines.append(line[4:])
            if len(line) == 3 or line[3] != "-":
                break
            raw = self.file.readline(2048)
        return Reply(code, " ".join(part for part in lines if part), self.remote)

    def ehlo(self, name: str) -> Reply:
        self.send(f"EHLO {name}\r\n".encode())
        lines: list[str] = []
        while True:
            raw = self.file.readline(2048)
            if not raw:
                raise SMTPError(_temp("4.4.2 connection closed by the peer", self.remote))
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise SMTPError(_temp(f"4.5.0 bad reply from the peer: {line[:80]!r}", self.remote))
            lines.append(line[4:])
            if len(line) == 3 or line[3] != "-":
                break
        code = int(line[:3])
        self.extensions = {}
        if code == 421:
            self.throttled = True
        if code == 250:
            for ext in lines[1:]:
                keyword, _, params = ext.partition(" ")
                self.extensions[keyword.upper()] = params.strip()
            return Reply(code, lines[0], self.remote)
        return Reply(code, " ".join(lines), self.remote)

    def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> Reply:
        reply = self.command("STARTTLS")
        if reply.code != 220:
            return reply
        self.file.close()
        # Python's own timeout again: under TLS a blocking socket's EAGAIN from SO_RCVTIMEO is
        # SSL_ERROR_WANT_READ, which the ssl module retries forever, so a peer that went
        # silent during or after the handshake would hold the delivery thread until it hung up.
        self.sock.settimeout(settings.MAILHOST_OUTBOUND_TIMEOUT)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.file = self.sock.makefile("rb")
        self.tls = True
        return reply


# The client's TLS contexts, one for each kind of session, reused by every STARTTLS: building
# one (ssl.create_default_context loads the system's CA bundle, about 140 certificates) cost
# 17.7 ms of CPU, more than everything else a delivery does. The key holds what a context is
# built from, so a changed setting or CA file (rewritten in place) gets a new one.
_contexts: dict[tuple, ssl.SSLContext] = {}


def _tls_context(wanted: HostSecurity = OPPORTUNISTIC) -> ssl.SSLContext:
    ca_file = settings.MAILHOST_OUTBOUND_CA_FILE
    try:
        stat = os.stat(ca_file) if ca_file else None
    except OSError:
        stat = None  # ssl says why when the context is built
    key = (
        wanted.protection,
        settings.MAILHOST_OUTBOUND_TLS_VERIFY,
        ca_file,
        stat and (stat.st_mtime_ns, stat.st_size, stat.st_ino),
    )
    context = _contexts.get(key)
    if context is None:
        if len(_contexts) > 16:
            _contexts.clear()
        context = _contexts[key] = _new_tls_context(wanted)
    return context


def _new_tls_context(wanted: HostSecurity) -> ssl.SSLContext:
    if wanted.protection == "mta-sts":
        # RFC 8461 4.2: PKIX, the MX host name in the certificate, TLS 1.2 or newer.
        from delivery.mtasts import verifying_context

        return verifying_context()
    context = ssl.create_default_context()
    if wanted.protection == "dane":
        # RFC 7672 3.1: the TLSA records are the trust; _dane_check matches them after the
        # handshake (names and dates do not matter for DANE-EE).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
    if not settings.MAILHOST_OUTBOUND_TLS_VERIFY:
        # RFC 7435 opportunistic security: encrypt even when the certificate cannot be checked;
        # a failed check would otherwise push the mail back to plaintext.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def wire_address(address: str) -> str:
    """The address as sent: an internationalized domain in its A-label (xn--) form, which
    needs no SMTPUTF8; a non-ASCII local part stays (and needs SMTPUTF8)."""
    local, sep, domain = address.rpartition("@")
    if not sep or domain.isascii():
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _xtext(value: str) -> str:
    # RFC 3461 4: "+" and "=" and controls as +XX
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


def prepare_data(raw: bytes) -> bytes:
    """CRLF line endings, long lines broken, dot-stuffed (RFC 5321 4.5.2), with the
    terminating dot line."""
    limit = settings.MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT
    if raw.endswith(b"\r\n") and not raw.startswith(b".") and b"\r\n." not in raw:
        # The usual message (CRLF lines, none too long, none starting with a dot) goes as
        # it is: _prepared_anew's replaces and split, every delivery, took 34 us of CPU for
        # a 2 KB bench message on a loaded machine, this 7.
        lines = raw.split(b"\r\n")
        if not limit or max(map(len, lines)) <= limit:
            rest = b"".join(lines)
            if b"\r" not in rest and b"\n" not in rest:
                return raw + b".\r\n"
    return _prepared_anew(raw, limit)


def _prepared_anew(raw: bytes, limit: int) -> bytes:
    """prepare_data of any message: its line endings made CRLF, its long lines broken
    (break_long_lines with `limit`), dot-stuffed."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    text = break_long_lines(text, limit)
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def break_long_lines(text: bytes, limit: int) -> bytes:
    """Lines of CRLF-ended `text` longer than `limit` octets, broken as Postfix's SMTP client
    does (smtp_line_length_limit, smtp_proto.c smtp_text_out): after `limit` octets comes
    CRLF SPACE, and so on, so that no line exceeds it (RFC 5321 4.5.3.1.6: 1000 octets with
    CRLF, the dot of dot-stuffing not counted). Messages may hold such lines (inbound takes
    them, as Postfix does); peers need not.

    Two refinements, both changing less than Postfix: a line of the top-level header is
    folded before its last space or tab within the limit, where there is one (RFC 5322
    2.2.3: unfolding gives the field back as it was, and DKIM's relaxed header
    canonicalization sees no change), and a break never splits a UTF-8 sequence. Header
    lines without white space, and body lines, get Postfix's CRLF SPACE (in a body that
    changes the text, and a DKIM body hash, exactly as Postfix does).
    """
    if not limit:
        return text
    lines = text.split(b"\r\n")
    if max(map(len, lines)) <= limit:  # every delivery asks; no generator step a line
        return text
    out: list[bytes] = []
    in_header = True
    for line in lines:
        if in_header and not line:
            in_header = False
        if len(line) <= limit:
            out.append(line)
        elif in_header:
            out.extend(_fold_header_line(line, limit))
        else:
            out.extend(_break_line(line, limit))
    return b"\r\n".join(out)


def _break_line(line: bytes, limit: int) -> list[bytes]:
    pieces: list[bytes] = []
    prefix = b""
    while len(prefix) + len(line) > limit:
        cut = _utf8_boundary(line, limit - len(prefix))
        pieces.append(prefix + line[:cut])
        line = line[cut:]
        prefix = b" "
    pieces.append(prefix + line)
    return pieces


def _fold_header_line(line: bytes, limit: int) -> list[bytes]:
    pieces: list[bytes] = []
    # A fold leaves text on the line before it: after "Name:" on a field's first line.
    body_at = 0 if line[:1] in (b" ", b"\t") else line.find(b":") + 1
    while len(line) > limit:
        cut = max(line.rfind(b" ", 1, limit + 1), line.rfind(b"\t", 1, limit + 1))
        if cut > body_at and line[body_at:cut].strip(b" \t"):
            pieces.append(line[:cut])
            line = line[cut:]  # starts with the white space: a continuation line
        else:
            cut = _utf8_boundary(line, limit)
            pieces.append(line[:cut])
            line = b" " + line[cut:]
        body_at = 0
    pieces.append(line)
    return pieces


def _utf8_boundary(line: bytes, cut: int) -> int:
    """`cut`, moved back (at most 3 octets) off the middle of a UTF-8 sequence."""
    for _ in range(3):
        if cut > 1 and cut < len(line) and line[cut] & 0xC0 == 0x80:
            cut -= 1
    return cut


def is_throttling(reply: Reply) -> bool:
    """A peer's way of saying "slow down": 421 (RFC 5321 3.8: closing, try later) or an
    enhanced code 4.7.x (RFC 3463 3.8: a security or policy status, how Gmail and Outlook
    answer a sender that opens too many sessions or sends too fast). Asked of every reply
    read: the text is looked at before the enhanced code's regular expression, which only a
    text starting "4.7." can make 4.7.x (any other gives the code's class, X.0.0)."""
    return reply.code == 421 or (
        reply.text.startswith("4.7.") and reply.enhanced.startswith("4.7.")
    )


def family_order(addresses: Sequence[str]) -> list[str]:
    """A host's addresses, the families taking turns, IPv4 first (RFC 8305 4: interleave;
    IPv4 first because a host here may well lack IPv6 routing)."""
    v4 = [a for a in addresses if ":" not in a]
    v6 = [a for a in addresses if ":" in a]
    ordered: list[str] = []
    for index in range(max(len(v4), len(v6))):
        ordered += v4[index : index + 1] + v6[index : index + 1]
    return ordered


# RFC 8305 5: "Connection Attempt Delay", the time one attempt has alone before the next
# address (of the other family, where there is one) is tried beside it. 250 ms is the RFC's
# recommended value.
CONNECTION_ATTEMPT_DELAY = 0.25


def race_connect(
    addresses: Sequence[str], port: int, *, timeout: float, failed: list[tuple[str, str]]
) -> tuple[socket.socket, str]:
    """Connect to the first of `addresses` that answers, Happy Eyeballs style (RFC 8305 5):
    each attempt gets CONNECTION_ATTEMPT_DELAY alone before the next one starts beside it, so
    an unreachable address (a blackholed IPv6 route) costs that delay, not a connect timeout.

    Returns (socket, address); the addresses that failed are appended to `failed` with the
    reason. Raises ConnectFailed when none connects within `timeout` of its start."""
    pending = list(addresses)
    attempts: dict[socket.socket, tuple[str, float]] = {}  # socket -> (address, deadline)
    selector = selectors.DefaultSelector()
    next_start = 0.0
    last_error = "no address to connect to"
    try:
        while pending or attempts:
            now = time.monotonic()
            if pending and (not attempts or now >= next_start):
                address = pending.pop(0)
                try:
                    sock = _start_connect(address, port)
                except OSError as exc:
                    failed.append((address, str(exc)))
                    last_error = str(exc)
                    continue  # at once to the next: this one failed without waiting
                attempts[sock] = (address, now + timeout)
                selector.register(sock, selectors.EVENT_WRITE)
                next_start = now + CONNECTION_ATTEMPT_DELAY
            wake = min(deadline for _, deadline in attempts.values())
            if pending:
                wake = min(wake, next_start)
            for key, _ in selector.select(max(0.0, wake - time.monotonic())):
                sock = key.fileobj
                address, _ = attempts.pop(sock)
                selector.unregister(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error == 0:
                    sock.setblocking(True)
                    return sock, address
                sock.close()
                last_error = os.strerror(error)
                failed.append((address, last_error))
                next_start = 0.0  # a failure lets the next attempt start now
            now = time.monotonic()
            for sock, (address, deadline) in list(attempts.items()):
                if now >= deadline:
                    del attempts[sock]
                    selector.unregister(sock)
                    sock.close()
                    last_error = "timed out"
                    failed.append((address, last_error))
        raise ConnectFailed(last_error)
    finally:
        for sock in attempts:
            sock.close()
        selector.close()


def _start_connect(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        source = source_address(address)
        if source is not None:
            sock.bind(source)  # MAILHOST_OUTBOUND_BIND
        sock.setblocking(False)
        error = sock.connect_ex((address, port))
        if error not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            raise OSError(error, os.strerror(error))
    except BaseException:
        sock.close()
        raise
    return sock


class ConnectionCache:
    """Sessions kept open after a transaction, for the next message to the same host.

    A connection goes back here after a transaction that ended cleanly, and waits at most
    MAILHOST_OUTBOUND_IDLE_TIMEOUT seconds for the next message (Postfix's
    smtp_connection_cache_time_limit). The next sender over it starts with MAIL when the
    last transaction ended with the reply to its data (RFC 5321 4.1.1.4: that reply clears
    the peer's buffers), else with RSET (4.1.1.5); either way a peer that closed the session
    meanwhile costs one round trip, not a message (_Stale). After
    MAILHOST_OUTBOUND_REUSE_LIMIT messages, or a 421/4.7.x from the peer, it is closed. Shared
    by the delivery threads of a process; a thread closes what has waited too long."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._idle: dict[tuple, list[tuple[Connection, float]]] = {}
        self._reaper: threading.Thread | None = None
        self.opened = 0  # connections made by deliver() (tests, the bench)

    def take(self, key: tuple) -> Connection | None:
        with self._lock:
            entries = self._idle.get(key)
            while entries:
                conn, since = entries.pop()
                if time.monotonic() - since < settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT:
                    return conn
                _quit(conn)
        return None

    def put(self, key: tuple, conn: Connection) -> None:
        limit = settings.MAILHOST_OUTBOUND_REUSE_LIMIT
        if (
            settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT <= 0
            or conn.throttled
            or (limit and conn.transactions >= limit)
        ):
            _quit(conn)
            return
        with self._lock:
            self._idle.setdefault(key, []).append((conn, time.monotonic()))
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(
                    target=self._reap, name="outbound-connection-cache", daemon=True
                )
                self._reaper.start()
            # No notify: a waiting reaper wakes for the entry that runs out first, never this
            # one (the newest). Woken by every put, it swept the cache once a message, and
            # often found it empty (the next message had taken the session), ended, and was
            # started again: a thread for one message in eight of bench/profile_delivery.py.

    def _reap(self) -> None:
        with self._lock:
            while self._idle:
                timeout = settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT
                now = time.monotonic()
                wake = now + timeout
                for key, entries in list(self._idle.items()):
                    keep = []
                    for conn, since in entries:
                        if now - since >= timeout:
                            _quit(conn)
                        else:
                            keep.append((conn, since))
                            wake = min(wake, since + timeout)
                    if keep:
                        self._idle[key] = keep
                    else:
                        del self._idle[key]
                if self._idle:
                    self._lock.wait(max(0.01, wake - now))
            self._reaper = None

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(entries) for entries in self._idle.values())

    def close_all(self) -> None:
        with self._lock:
            for entries in self._idle.values():
                for conn, _ in entries:
                    _quit(conn)
            self._idle.clear()
            self._lock.notify()


def _quit(conn: Connection) -> None:
    try:
        conn.sock.settimeout(5)
        conn.send(b"QUIT\r\n")
    except OSError:
        pass
    conn.close()


connection_cache = ConnectionCache()


def deliver(
    hosts: Sequence[MXHost],
    envelope: Envelope,
    *,
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    require_tls: bool = False,
    before_connect: Callable[[], None] | None = None,
    skip_unreachable: bool = True,
    security: Callable[[MXHost], HostSecurity] | None = None,
) -> Delivery:
    """Hand the envelope to the first host that takes the transaction.

    Connection failures, greeting/EHLO/MAIL refusals with 4xx, and lost sessions move on to
    the next address or MX; a reply to a recipient or to DATA is final for this attempt.
    A session left open by an earlier message to the host is used first (connection_cache);
    new connections race the host's addresses (race_connect). Addresses that could not be
    reached moments ago are skipped, unless `skip_unreachable` is False (an operator's
    "retry now" means now). `security` gives what each host's session must achieve (DANE,
    MTA-STS); without it, opportunistic TLS.
    """
    port = settings.MAILHOST_OUTBOUND_PORT if port is None else port
    data = prepare_data(envelope.data)
    last = _temp("4.4.1 no MX host answered")
    last_address = ""
    tried = False
    throttled = False
    wait = UNREACHABLE_MEMO
    for host in hosts:
        wanted = security(host) if security is not None else OPPORTUNISTIC
        if wanted.protection == "refused":
            last = _temp(f"4.7.5 {host.name}: {wanted.reason}", host.name)
            logger.info("delivery via %s refused: %s", host.name, wanted.reason)
            continue
        key = (host.name, tuple(host.addresses), port, wanted.aim(), auth, require_tls)
        if before_connect is not None:
            before_connect()  # ahead of take(): a connection taken is not lost when it raises
        reused = connection_cache.take(key)
        if reused is not None:
            tried = True
            try:
                result = _session(
                    host,
                    reused.address,
                    port,
                    envelope,
                    data,
                    auth,
                    require_tls,
                    wanted=wanted,
                    key=key,
                    conn=reused,
                )
                result.address = reused.address
                return result
            except (_Stale, OSError, ssl.SSLError):
                pass  # the peer closed it while it waited: a new connection below
            except SMTPError as exc:
                throttled = throttled or exc.throttled
                last, last_address = exc.reply, reused.address
                logger.info("delivery via %s [%s] failed: %s", host.name, reused.address, exc.reply)
                if not exc.try_next:
                    replies = {r.address: exc.reply for r in envelope.recipients}
                    return Delivery(replies, address=reused.address, throttled=throttled)
        pending = []
        for address in family_order(host.addresses):
            skipped_for = _unreachable_for(address, port) if skip_unreachable else 0.0
            if skipped_for:
                wait = min(wait, skipped_for)
                last = _temp(
                    f"4.4.1 {host.name} [{address}] was unreachable moments ago", host.name
                )
                last_address = address
            else:
                pending.append(address)
        while pending:
            tried = True
            if before_connect is not None:
                before_connect()  # the caller renews its lease: each session may take minutes
            failed: list[tuple[str, str]] = []
            try:
                sock, address = race_connect(
                    pending, port, timeout=settings.MAILHOST_OUTBOUND_CONNECT_TIMEOUT, failed=failed
                )
            except ConnectFailed:
                sock = None
            for bad, why in failed:
                _mark_unreachable(bad, port)
                pending.remove(bad)
                last, last_address = _temp(f"4.4.1 {host.name} [{bad}]: {why}", host.name), bad
                logger.info("cannot connect to %s [%s]: %s", host.name, bad, why)
            if sock is None:
                break
            pending.remove(address)
            last_address = address
            connection_cache.opened += 1
            try:
                result = _session(
                    host,
                    address,
                    port,
                    envelope,
                    data,
                    auth,
                    require_tls,
                    wanted=wanted,
                    key=key,
                    sock=sock,
                )
                result.address = address
                result.throttled = result.throttled or throttled
                return result
            except ConnectFailed as exc:  # a reconnection (TLS fallback) failed
                _mark_unreachable(address, port)
                last = _temp(f"4.4.1 {host.name} [{address}]: {exc}", host.name)
                logger.info("cannot connect to %s [%s]: %s", host.name, address, exc)
            except SMTPError as exc:
                throttled = throttled or exc.throttled
                last = exc.reply
                logger.info("delivery via %s [%s] failed: %s", host.name, address, exc.reply)
                if not exc.try_next:
                    replies = {r.address: exc.reply for r in envelope.recipients}
                    return Delivery(replies, address=address, throttled=throttled)
            except (OSError, ssl.SSLError) as exc:
                last = _temp(f"4.4.1 {host.name} [{address}]: {exc}", host.name)
                logger.info("delivery via %s [%s] failed: %s", host.name, address, exc)
    return Delivery(
        {r.address: last for r in envelope.recipients},
        untried_for=None if tried else wait,
        address=last_address,
        throttled=throttled,
        transacted=False,
    )


class _Stale(Exception):
    """A cached connection whose first reply (to RSET or MAIL) did not come, or was 421: the
    peer closed it meanwhile."""


def _open(
    host: MXHost,
    address: str,
    port: int,
    auth: tuple[str, str] | None,
    require_tls: bool,
    *,
    use_tls: bool = True,
    wanted: HostSecurity = OPPORTUNISTIC,
    sock: socket.socket | None = None,
) -> Connection:
    """A session ready for MAIL FROM: greeting, EHLO, STARTTLS as `wanted`, AUTH."""
    conn = Connection(address, port, remote_name=host.name, sock=sock)
    try:
        greeting = conn.read_reply()
        if greeting.code != 220:
            # RFC 5321 3.1: a 554 greeting refuses the session; try the next MX either way
            # (the QUIT goes out in `finally`).
            raise SMTPError(greeting)
        reply = conn.ehlo(settings.MAILHOST_HOSTNAME)
        if reply.code != 250:
            reply = conn.command(f"HELO {settings.MAILHOST_HOSTNAME}")
            if reply.code != 250:
                raise SMTPError(reply)
        if use_tls and "STARTTLS" not in conn.extensions:
            _tls_outcome(wanted, conn, "starttls-not-supported")
        verified = wanted.protection in ("dane", "mta-sts")
        if verified and wanted.enforce and "STARTTLS" not in conn.extensions:
            raise SMTPError(
                _temp(f"4.7.4 the peer does not offer STARTTLS ({wanted.protection})", host.name)
            )
        if use_tls and "STARTTLS" in conn.extensions:
            # SNI with the MX name; it is checked only when something asks for verification.
            sni = None if _is_ip_literal(host.name) else host.name
            try:
                tls_reply = conn.starttls(_tls_context(wanted), sni)
            except (ssl.SSLError, OSError) as exc:
                _tls_outcome(wanted, conn, _handshake_failure(exc), str(exc))
                if require_tls or (verified and wanted.enforce):
                    raise SMTPError(
                        _temp(f"4.7.5 TLS handshake failed: {exc}", host.name)
                    ) from None
                # The session is unusable after a failed handshake: on a new one, without
                # verification (MTA-STS testing), or without TLS.
                conn.close()
                if verified:
                    logger.info(
                        "%s verification with %s failed (%s); opportunistic TLS",
                        wanted.protection,
                        host.name,
                        exc,
                    )
                    return _open(host, address, port, auth, require_tls)
                logger.info("STARTTLS with %s failed (%s); retrying without TLS", host.name, exc)
                return _open(host, address, port, auth, require_tls, use_tls=False)
            if tls_reply.code != 220:
                _tls_outcome(wanted, conn, "starttls-not-supported", str(tls_reply))
            if tls_reply.code == 220:
                conn.protection = wanted.protection if verified else "tls"
                if wanted.protection == "dane":
                    _dane_check(conn, wanted, host.name)
                else:
                    _tls_outcome(wanted, conn)
                reply = conn.ehlo(settings.MAILHOST_HOSTNAME)
                if reply.code != 250:
                    raise SMTPError(reply)
        if require_tls and not conn.tls:
            raise SMTPError(_temp("4.7.4 the peer does not offer STARTTLS", host.name))
        if verified and wanted.enforce and not conn.tls:
            raise SMTPError(
                _temp(f"4.7.4 STARTTLS refused by the peer ({wanted.protection})", host.name)
            )
        if auth:
            _authenticate(conn, *auth)
    except SMTPError as exc:
        exc.throttled = conn.throttled
        _quit(conn)
        raise
    except BaseException:
        _quit(conn)
        raise
    return conn


def _session(
    host: MXHost,
    address: str,
    port: int,
    envelope: Envelope,
    data: bytes,
    auth: tuple[str, str] | None,
    require_tls: bool,
    *,
    wanted: HostSecurity = OPPORTUNISTIC,
    key: tuple = (),
    conn: Connection | None = None,
    sock: socket.socket | None = None,
) -> Delivery:
    """One transaction: on `conn` (a cached session, RSET first when its last transaction
    was left open; raises _Stale when it is gone) or on a new session over `sock`. A session
    that ends cleanly goes back to the connection cache."""
    waited = conn is not None  # nothing has come from the peer since it was cached
    if conn is not None and conn.transaction_open:
        try:
            reply = conn.command("RSET")
        except (SMTPError, OSError):
            reply = None
        if reply is None or reply.code != 250:
            _quit(conn)
            raise _Stale()
        conn.transaction_open = False
        waited = False
    elif conn is None:
        conn = _open(host, address, port, auth, require_tls, wanted=wanted, sock=sock)
    clean = False
    try:
        if envelope.require_tls:
            _require_tls_check(conn, conn.protection, host.name)
        result = _transaction(conn, envelope, data, waited=waited)
        conn.transactions += 1
        result.protection = conn.protection
        result.throttled = conn.throttled
        clean = True
        return result
    except SMTPError as exc:
        exc.throttled = conn.throttled
        raise
    finally:
        if clean:
            connection_cache.put(key, conn)
        else:
            _quit(conn)


def _dane_check(conn: Connection, wanted: HostSecurity, name: str) -> None:
    """RFC 7672 3: the peer's chain must match one of the host's usable TLSA records (none
    usable: TLS without authentication, 2.2). A mismatch defers: never plaintext instead."""
    from delivery import dane

    records = wanted.dane.records if wanted.dane is not None else ()
    if not records:
        _tls_outcome(wanted, conn, "tlsa-invalid", "no usable TLSA record")
        return
    chain = [c.public_bytes(_ssl.ENCODING_DER) for c in conn.sock._sslobj.get_unverified_chain()]
    why = dane.verify(records, chain, name)
    if why is not None:
        # RFC 8460 4.3: the TLSA records are the trust anchors; none vouches for this chain.
        _tls_outcome(wanted, conn, "certificate-not-trusted", why)
        raise SMTPError(_temp(f"4.7.5 DANE: {why}", name))
    _tls_outcome(wanted, conn)


def _tls_outcome(
    wanted: HostSecurity, conn: Connection, result_type: str = "", reason: str = ""
) -> None:
    """Count the session's TLS outcome ("" for success, else an RFC 8460 4.3 result type)
    for the TLS report of the policy `wanted` came from (delivery/outreports/tlsrpt.py)."""
    if wanted.tlsrpt is None:
        return
    wanted.tlsrpt.session(
        result_type,
        mx_host=conn.remote,
        receiving_ip=conn.address,
        sending_ip=conn.local_address,
        reason=reason,
    )


def _handshake_failure(exc: BaseException) -> str:
    from delivery.outreports.tlsrpt import handshake_failure

    return handshake_failure(exc)


def _require_tls_check(conn: Connection, protection: str, name: str) -> None:
    """RFC 8689 4.2.1: a REQUIRETLS message goes only over TLS verified by DANE or MTA-STS,
    to a peer that offers REQUIRETLS itself; else it is returned (5.7.30)."""
    if protection not in ("dane", "mta-sts"):
        raise SMTPError(
            Reply(550, f"5.7.30 REQUIRETLS: no verified TLS to {name} (DANE or MTA-STS)", name)
        )
    if "REQUIRETLS" not in conn.extensions:
        raise SMTPError(Reply(550, f"5.7.30 REQUIRETLS: {name} does not offer REQUIRETLS", name))


def _authenticate(conn: Connection, user: str, password: str) -> None:
    mechanisms = conn.extensions.get("AUTH", "").upper().split()
    if "PLAIN" not in mechanisms:
        raise SMTPError(_temp("4.7.0 the smart host offers no AUTH PLAIN", conn.remote))
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    reply = conn.command(f"AUTH PLAIN {token}")
    if reply.code != 235:
        # A refused login will not get better by trying another address of the same host.
        raise SMTPError(reply, try_next=False)


def _needs_smtputf8(envelope: Envelope) -> bool:
    addresses = [envelope.mail_from, *(r.address for r in envelope.recipients)]
    if not all(wire_address(a).isascii() for a in addresses):
        return True
    end = envelope.data.find(b"\r\n\r\n")
    if end < 0:
        end = envelope.data.find(b"\n\n")
    header = envelope.data if end < 0 else envelope.data[:end]
    return not header.isascii()


def _first_reply(conn: Connection, *, waited: bool) -> Reply:
    """A reply; for the first command over a session that `waited` in the cache, none (the
    peer closed the session) or a 421 (RFC 5321 3.8: it is closing it) means the session is
    stale (_Stale), not that the destination refuses or throttles."""
    try:
        reply = conn.read_reply()
    except (SMTPError, OSError):
        if waited:
            raise _Stale() from None
        raise
    if waited and reply.code == 421:
        raise _Stale()
    return reply


def _transaction(
    conn: Connection, envelope: Envelope, data: bytes, *, waited: bool = False
) -> Delivery:
    ext = conn.extensions
    dsn = "DSN" in ext
    size_limit = ext.get("SIZE", "")
    if size_limit.isdigit() and int(size_limit) and len(data) > int(size_limit):
        # RFC 1870 6: do not send what the peer has said it will not take.
        reply = Reply(552, f"5.3.4 message size exceeds the limit of {conn.remote}", conn.remote)
        raise SMTPError(reply, try_next=False)
    use_smtputf8 = envelope.smtputf8 and "SMTPUTF8" in ext
    if envelope.smtputf8 and not use_smtputf8 and _needs_smtputf8(envelope):
        # RFC 6531 3.2: a message that really has UTF-8 addresses or header fields cannot
        # go to a peer without SMTPUTF8; one that only asked for it goes as plain ASCII mail.
        reply = Reply(553, "5.6.7 the peer does not support SMTPUTF8", conn.remote)
        raise SMTPError(reply, try_next=False)

    mail = f"MAIL FROM:<{wire_address(envelope.mail_from)}>"
    if "SIZE" in ext:
        mail += f" SIZE={len(data)}"
    if envelope.body_8bit and "8BITMIME" in ext:
        mail += " BODY=8BITMIME"
    if use_smtputf8:
        mail += " SMTPUTF8"
    if envelope.require_tls:
        mail += " REQUIRETLS"
    if dsn:
        if envelope.ret:
            mail += f" RET={envelope.ret}"
        if envelope.envid:
            mail += f" ENVID={_xtext(envelope.envid)}"
    commands = [mail]
    for rcpt in envelope.recipients:
        line = f"RCPT TO:<{wire_address(rcpt.address)}>"
        if dsn:
            if rcpt.notify:
                line += f" NOTIFY={rcpt.notify}"
            if rcpt.orcpt:
                # The spool keeps ORCPT decoded ("rfc822;addr"); the wire wants xtext.
                addr_type, _, original = rcpt.orcpt.partition(";")
                line += f" ORCPT={addr_type};{_xtext(original)}"
        commands.append(line)

    conn.transaction_open = True
    if "PIPELINING" in ext:
        # RFC 2920 3.1: MAIL, RCPTs and DATA go in one batch; the replies come in order.
        conn.send("".join(c + "\r\n" for c in [*commands, "DATA"]).encode("utf-8"))
        mail_reply = _first_reply(conn, waited=waited)
        replies = [conn.read_reply() for _ in range(len(commands))]
        rcpt_replies, data_reply = replies[:-1], replies[-1]
    else:
        conn.send(commands[0].encode("utf-8") + b"\r\n")
        mail_reply = _first_reply(conn, waited=waited)
        if mail_reply.code != 250:
            rcpt_replies, data_reply = [], None
        else:
            rcpt_replies = [conn.command(c) for c in commands[1:]]
            if any(r.code in (250, 251) for r in rcpt_replies):
                data_reply = conn.command("DATA")
            else:
                data_reply = None

    if mail_reply.code != 250:
        # A 4xx here may be this host's trouble alone: let the next MX try.
        raise SMTPError(mail_reply, try_next=not mail_reply.permanent)
    accepted = [
        (rcpt, reply)
        for rcpt, reply in zip(envelope.recipients, rcpt_replies)
        if reply.code in (250, 251)
    ]
    result = Delivery(
        {
            rcpt.address: reply
            for rcpt, reply in zip(envelope.recipients, rcpt_replies)
            if reply.code not in (250, 251)
        },
        peer_dsn=dsn,
    )
    if not accepted:
        if data_reply is not None and data_reply.code == 354:
            # Pipelined DATA was accepted with no valid recipient: end it empty (RFC 2920 3.1).
            conn.send(b".\r\n")
            conn.read_reply()
            conn.transaction_open = False
        return result
    if data_reply is None or data_reply.code != 354:
        reply = data_reply or _temp("4.3.0 DATA was not attempted", conn.remote)
        for rcpt, _ in accepted:
            result.replies[rcpt.address] = reply
        return result
    conn.send(data)
    try:
        final = conn.read_reply()
    except (SMTPError, OSError) as exc:
        # The peer may have the message already; retrying risks a duplicate, the lesser evil.
        reply = exc.reply if isinstance(exc, SMTPError) else _temp(f"4.4.2 {exc}", conn.remote)
        raise SMTPError(reply, try_next=False) from None
    conn.transaction_open = False
    for rcpt, _ in accepted:
        result.replies[rcpt.address] = final
    return result

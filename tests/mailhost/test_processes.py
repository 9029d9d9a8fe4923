"""Several worker processes (MAILHOST_PROCESSES=2) behind the same ports, as `runmail` runs
them: real processes, real sockets, the embedded default (SQLite, no Redis).

Which worker serves a connection is read from /proc (the server side of the TCP connection is
a socket whose inode one worker holds open), so a test can hold one session in each worker.
"""

from __future__ import annotations

import hashlib
import os
import signal
import smtplib
import socket
import ssl
import time
import urllib.request
from pathlib import Path

import pytest

from bench.mailhost_process import Mailhost, process_tree
from tests.support import procsockets
from tests.support.tlsca import make_ca

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="finds each connection's worker in /proc"
)

PASSWORD = "correct horse battery"
PER_IP = 8  # MAILHOST_MAX_CONNECTIONS_PER_IP of the server under test
CAPPED_SOURCE = "127.0.0.9"  # the caps test's connections come from here


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("processes")
    ca = make_ca(root / "ca", names=("127.0.0.1",))
    mailhost = Mailhost(
        root / "data",
        extra_env={
            "MAILHOST_PROCESSES": "2",
            "MAILHOST_TLS_CERT": str(ca.cert_path),
            "MAILHOST_TLS_KEY": str(ca.key_path),
            "MAILHOST_MAX_CONNECTIONS_PER_IP": str(PER_IP),
            "MAILHOST_ALLOW_PLAINTEXT_AUTH": "1",
        },
    )
    mailhost.manage("migrate")
    mailhost.manage("adddomain", "example.org")
    for user in ("alice", "bob", "carol"):
        mailhost.manage(
            "addmailbox", f"{user}@example.org", "--password-stdin", stdin=PASSWORD + "\n"
        )
    mailhost.ca = ca
    mailhost.start(120)
    try:
        yield mailhost
    finally:
        if mailhost.process.poll() is None:
            mailhost.process.send_signal(signal.SIGTERM)
            try:
                mailhost.process.wait(60)
            except Exception:
                mailhost.process.kill()


def workers(mailhost: Mailhost) -> list[int]:
    return process_tree(mailhost.pid)[1:]


def _server_inode(client: socket.socket) -> str:
    """The inode of the server's side of this loopback connection."""
    client_port = client.getsockname()[1]
    server_port = client.getpeername()[1]
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (
                    int(local.rsplit(":", 1)[1], 16) == server_port
                    and int(remote.rsplit(":", 1)[1], 16) == client_port
                ):
                    return fields[9]
    raise AssertionError("connection not in /proc/net/tcp")


def worker_of(mailhost: Mailhost, client: socket.socket, timeout: float = 5) -> int:
    """The pid of the worker that accepted this connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = procsockets.holder([_server_inode(client)], workers(mailhost))
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise AssertionError("no worker holds the connection")


class Line:
    """A line-protocol client (IMAP, POP3) on a plain or TLS socket."""

    def __init__(self, mailhost: Mailhost, port_name: str, *, source: str = "127.0.0.1"):
        self.sock = socket.create_connection(
            ("127.0.0.1", mailhost.ports[port_name]), timeout=15, source_address=(source, 0)
        )
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        data = self.file.readline()
        if not data:
            raise ConnectionError("closed")
        return data.rstrip(b"\r\n")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def until(self, prefix: bytes) -> list[bytes]:
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(prefix):
                return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def imap(mailhost: Mailhost, user: str | None = None, **kwargs) -> Line:
    client = Line(mailhost, "imap", **kwargs)
    assert client.line().startswith(b"* OK")
    if user:
        client.send(f'a LOGIN {user}@example.org "{PASSWORD}"')
        assert client.until(b"a ")[-1].startswith(b"a OK"), user
    return client


def one_in_each(
    mailhost: Mailhost, connect, attempts: int = 60, seconds: float = 0
) -> dict[int, Line]:
    """Connections until each worker holds one (`attempts` at least, and for `seconds` at
    least); the others are closed."""
    held: dict[int, Line] = {}
    deadline = time.monotonic() + seconds
    tried = 0
    while tried < attempts or time.monotonic() < deadline:
        tried += 1
        client = connect()
        pid = worker_of(mailhost, client.sock)
        if pid in held:
            client.close()
            if seconds:
                time.sleep(0.05)
        else:
            held[pid] = client
        if len(held) == len(workers(mailhost)) == 2:
            return held
    raise AssertionError(f"connections reached {len(held)} worker(s) only")


def test_two_workers_share_the_ports(server):
    assert len(workers(server)) == 2
    held = one_in_each(server, lambda: imap(server))
    assert len(held) == 2
    for client in held.values():
        client.close()


def malloc_arenas(pid: int) -> int:
    """glibc's thread arenas in a process, from its maps: each is a heap reserved at an address
    aligned to 64 MiB (HEAP_MAX_SIZE), its used part read-write, the rest of the reservation
    following it without access (the main arena is the brk heap, not counted)."""
    heap_max = 64 << 20
    regions = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        start, end = (int(value, 16) for value in fields[0].split("-"))
        regions.append((start, end, fields[1], len(fields) > 5))
    return sum(
        1
        for (start, end, perms, named), following in zip(regions, regions[1:] + [None])
        if not named
        and perms.startswith("rw")
        and start % heap_max == 0
        and end - start < heap_max
        and following is not None
        and following[0] == end
        and following[2].startswith("---")
    )


def test_workers_keep_to_the_malloc_arena_limit(server):
    """MAILHOST_MALLOC_ARENA_MAX (default 2: the main arena and one more) reaches the forked
    workers, whose IMAP, web, delivery and fan-out threads would otherwise take an arena each."""
    clients = [imap(server, "carol") for _ in range(PER_IP - 2)]  # IMAP's database threads at work
    try:
        for client in clients:
            client.send("s SELECT INBOX")
        for client in clients:
            assert client.until(b"s ")[-1].startswith(b"s OK")
        for pid in workers(server):
            threads = len(os.listdir(f"/proc/{pid}/task"))
            assert threads > 4
            assert malloc_arenas(pid) <= 1, (pid, threads)
    finally:
        for client in clients:
            client.close()


def test_the_supervisor_holds_no_image_of_the_app(server):
    """Once the first workers are forked the supervisor becomes mailhost/supervisor.py's
    program (exec, the same pid): the image of the app they were forked from, whose pages they
    copied as they wrote to them (reference counts), was 15-20 MiB that the supervisor alone
    held (issue 22). Django imports decimal and the families ssl: neither library is mapped
    in it now, and it runs one thread."""
    pid = server.pid
    assert "mailhost.supervisor" in Path(f"/proc/{pid}/cmdline").read_text()
    libraries = {
        Path(line.split()[-1]).name.split(".")[0]
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if line.rstrip().endswith(".so") or ".so." in line
    }
    assert not libraries & {"_decimal", "_ssl", "_sqlite3"}, libraries
    assert len(os.listdir(f"/proc/{pid}/task")) == 1
    for worker in workers(server):  # the workers, forked before, are the app's
        assert "_ssl" in Path(f"/proc/{worker}/maps").read_text()


def test_the_supervisor_program_imports_no_django():
    """mailhost/supervisor.py is the standard library alone: what it imports stays out of the
    supervisor's memory (the test above sees the running one)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r}); import mailhost.supervisor;"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'mailboxes',"
        " 'protocols', 'delivery') or m.startswith('mailhost.') and m != 'mailhost.supervisor'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_web_app_is_only_in_the_first_worker(server):
    """The system checks import the URLconf (every webmail view) in a child of their own, not
    in the supervisor: the other workers, forked from it, never load webmail's modules. nh3,
    webmail's HTML sanitizer, is the one with a library of its own to see in /proc."""
    # The first request resolves the URLconf in the web worker.
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['web']}/healthz", timeout=30):
        pass
    tree = process_tree(server.pid)
    web_worker = None
    for pid in tree:
        if "nh3" in Path(f"/proc/{pid}/maps").read_text():
            assert web_worker is None, "webmail in more than one process"
            web_worker = pid
    assert web_worker in workers(server)


def test_idle_in_one_worker_is_woken_by_append_in_the_other(server):
    held = one_in_each(server, lambda: imap(server, "alice"))
    (idler_pid, idler), (_, appender) = held.items()
    idler.send("s SELECT INBOX")
    exists = [line for line in idler.until(b"s ") if line.endswith(b" EXISTS")][0]
    count = int(exists.split()[1])
    idler.send("i IDLE")
    assert idler.line().startswith(b"+")
    message = "Subject: across\r\n\r\nhello\r\n"
    appender.send(f"p APPEND INBOX {{{len(message)}}}")
    assert appender.line().startswith(b"+")
    appender.sock.sendall(message.encode() + b"\r\n")
    assert appender.until(b"p ")[-1].startswith(b"p OK")
    started = time.monotonic()
    assert idler.line() == f"* {count + 1} EXISTS".encode()
    assert time.monotonic() - started < 2
    idler.send("DONE")
    assert idler.until(b"i ")[-1].startswith(b"i OK")
    for client in held.values():
        client.close()


def test_smtp_delivery_wakes_idle_in_every_worker(server):
    held = one_in_each(server, lambda: imap(server, "bob"))
    counts = {}
    for pid, client in held.items():
        client.send("s SELECT INBOX")
        exists = [line for line in client.until(b"s ") if line.endswith(b" EXISTS")][0]
        counts[pid] = int(exists.split()[1])
        client.send("i IDLE")
        assert client.line().startswith(b"+")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.sendmail("someone@example.net", ["bob@example.org"], b"Subject: wake\r\n\r\nup\r\n")
    for pid, client in held.items():
        assert client.line() == f"* {counts[pid] + 1} EXISTS".encode()
        client.send("DONE")
        assert client.until(b"i ")[-1].startswith(b"i OK")
        client.close()


def pop3_login(client: Line, user: str) -> bytes:
    client.send(f"USER {user}@example.org")
    assert client.line().startswith(b"+OK")
    client.send(f"PASS {PASSWORD}")
    return client.line()


def test_pop3_takeover_reaches_the_session_in_the_other_worker(server):
    def connect() -> Line:
        client = Line(server, "pop3")
        assert client.line().startswith(b"+OK")
        return client

    held = one_in_each(server, connect)
    (_, first), (_, second) = held.items()
    assert pop3_login(first, "carol").startswith(b"+OK")
    # The maildrop is exclusive across the workers (the lease is in the database), and the
    # newer login takes it over (MAILHOST_POP3_TAKEOVER): the older session, waiting for a
    # command in the other process, hears it at once, not at its next lease renewal.
    started = time.monotonic()
    assert pop3_login(second, "carol").startswith(b"+OK")
    assert first.line().startswith(b"-ERR [IN-USE]")
    assert time.monotonic() - started < 5
    second.send("QUIT")
    assert second.line().startswith(b"+OK")
    for client in held.values():
        client.close()


def test_login_limiter_counts_failures_from_every_worker(server):
    held = one_in_each(server, lambda: imap(server))
    (_, guesser), (_, other) = held.items()
    # Wrong passwords for alice in one worker: past the free failures each waits longer.
    for attempt in range(3):  # IMAP closes the connection after MAILHOST_IMAP_MAX_AUTH_FAILURES
        guesser.send(f'g{attempt} LOGIN alice@example.org "wrong {attempt}"')
        assert guesser.until(f"g{attempt} ".encode())[-1].startswith(f"g{attempt} NO".encode())
    # The same client in the other worker waits too, although that process saw none of them.
    started = time.monotonic()
    other.send(f'o LOGIN alice@example.org "{PASSWORD}"')
    reply = other.until(b"o ")[-1]
    waited = time.monotonic() - started
    assert waited >= 1.0 or reply.startswith(b"o NO"), (waited, reply)
    for client in held.values():
        client.close()


def test_connection_caps_hold_across_workers(server):
    held = one_in_each(server, lambda: imap(server, source=CAPPED_SOURCE))
    time.sleep(1)  # the extra connections one_in_each closed have left the counts
    clients = [*held.values()] + [imap(server, source=CAPPED_SOURCE) for _ in range(PER_IP - 2)]
    refused = Line(server, "imap", source=CAPPED_SOURCE)
    assert refused.line().startswith(b"* BYE")
    refused.close()
    for client in clients:
        client.close()


def fingerprint(server: Mailhost) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(server.ca.ca_path))
    raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=15)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        pid = worker_of(server, tls)
        return pid, hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def test_sighup_reloads_the_certificate_in_every_worker(server, tmp_path):
    before = {fingerprint(server)[1] for _ in range(4)}
    assert len(before) == 1
    fresh = make_ca(tmp_path / "ca2", names=("127.0.0.1",))
    # The same CA file name for the client: the new chain replaces the old one in place.
    server.ca.ca_path.write_bytes(fresh.ca_path.read_bytes())
    server.ca.key_path.write_bytes(fresh.key_path.read_bytes())
    server.ca.cert_path.write_bytes(fresh.cert_path.read_bytes())
    os.kill(server.pid, signal.SIGHUP)
    seen: dict[int, set[str]] = {}
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        try:
            pid, print_ = fingerprint(server)
        except ssl.SSLError:  # a worker that has not reloaded yet serves the old chain
            time.sleep(0.1)
            continue
        seen.setdefault(pid, set()).add(print_)
    assert len(seen) == 2
    for prints in seen.values():
        assert prints.isdisjoint(before)


def test_a_killed_worker_is_started_again(server):
    before = workers(server)
    assert len(before) == 2
    os.kill(before[1], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = workers(server)
        if len(now) == 2 and before[1] not in now:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"workers {workers(server)} after killing {before[1]}")
    # Started again as a fresh Python (mailhost/supervisor.py: the image the first workers
    # were forked from is gone), it imports the app before it accepts: seconds, not a fork's
    # milliseconds.
    held = one_in_each(server, lambda: imap(server, "alice"), seconds=60)
    assert set(held) == set(workers(server))
    for client in held.values():
        client.close()
    assert server.process.poll() is None


def test_sigterm_drains_every_worker(server):
    """Last in this module: the server stops. A transaction in flight in each worker ends
    with its 250 after SIGTERM; idle IMAP sessions hear BYE; the supervisor exits 0."""

    def connect() -> Line:
        client = Line(server, "smtp")
        assert client.line().startswith(b"220")
        return client

    held = one_in_each(server, connect)
    for client in held.values():
        client.send("EHLO client.example.net")
        client.until(b"250 ")
        client.send("MAIL FROM:<someone@example.net>")
        assert client.line().startswith(b"250")
        client.send("RCPT TO:<alice@example.org>")
        assert client.line().startswith(b"250")
    idle = one_in_each(server, lambda: imap(server, "alice"))
    server.process.send_signal(signal.SIGTERM)
    for client in idle.values():
        assert client.line().startswith(b"* BYE")
    for client in held.values():
        client.send("DATA")
        assert client.line().startswith(b"354")
        client.sock.sendall(b"Subject: in flight\r\n\r\nstill accepted\r\n.\r\n")
        assert client.line().startswith(b"250")
    assert server.process.wait(60) == 0
    for client in [*held.values(), *idle.values()]:
        client.close()


def test_connections_accepted_on_the_shared_sockets_send_without_delay():
    """The supervisor's listening sockets (processes.bind) say they are TCP, as asyncio's own
    are: asyncio sets TCP_NODELAY only on such sockets, and an accepted socket is its
    listener's kind. Without it, Nagle held a reply's second write until the client's delayed
    ACK (40 ms a command in every worker)."""
    import asyncio

    from mailhost import processes

    listener = processes.bind("test", "127.0.0.1", 0)
    seen = []

    async def main() -> None:
        async def accepted(reader, writer) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()
            writer.close()

    asyncio.run(main())
    assert seen and seen[0] != 0

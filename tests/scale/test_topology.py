"""The scale-out topology of README "Scaling out", on one machine (bench/topology.py): HAProxy
(TCP mode, send-proxy-v2) in front of two runsmtp, two runimap and one runpop3 processes on
their own loopback addresses, two rqworkers, one PostgreSQL, one Redis and S3 (moto's server).

Mail goes in through HAProxy while a front end and a worker are SIGKILLed and restarted, round
after round (smtp1 and worker1, then imap1 and worker2, ...). At the end:
- every message that got 250 is stored exactly once, in its mailbox;
- every outbound message (an alias forwarding outside) reached the remote MX;
- IMAP clients cut off by a kill reconnect through HAProxy and see every message acknowledged
  before they reconnected;
- IDLE sessions on the front end that is never killed (imap2) are woken by deliveries through
  the other processes, the restarted ones included.
And across front ends: failed logins on one IMAP front end slow the next on the other (one
limiter), and the POP3 maildrop is locked while a session holds it.

Skipped without haproxy, PostgreSQL (DATABASE_URL) or Redis (REDIS_URL). CI runs
MAILHOST_TOPOLOGY_ROUNDS (default 2) kill rounds; for a longer run:

    MAILHOST_TOPOLOGY_ROUNDS=20 .venv/bin/python -m pytest tests/scale/test_topology.py
"""

from __future__ import annotations

import imaplib
import os
import poplib
import random
import re
import smtplib
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from bench.topology import CLIENT_HOST, DOMAIN, FRONT_ENDS, HAPROXY, PASSWORD, WORKERS, Cluster
from bench.topology import missing as topology_missing

ROUNDS = int(os.environ.get("MAILHOST_TOPOLOGY_ROUNDS", "2"))
TOKEN = re.compile(rb"topology-([0-9a-f]{32})")
READERS = ("alice", "bob")
WAKE_TIMEOUT = 15.0

pytestmark = pytest.mark.skipif(topology_missing() is not None, reason=topology_missing() or "")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(
        Path(tmp_path_factory.mktemp("topology")),
        extra_env={
            # A killed worker's leases run out, and its jobs are swept again, within seconds.
            "MAILHOST_SWEEP_INTERVAL": "0.5",
            "MAILHOST_DELIVERY_LEASE": "3",
            "MAILHOST_RETRY_SCHEDULE": "1,1,1,1",
            "MAILHOST_POP3_LEASE_SECONDS": "10",
        },
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def address(local: str) -> str:
    return f"{local}@{DOMAIN}"


def message(token: str, to: str, size: int) -> bytes:
    filler = ("y" * 70 + "\r\n") * (size // 72)
    return (
        f"From: <sender@remote.example>\r\nTo: <{to}>\r\nSubject: topology-{token}\r\n"
        f"Message-ID: <{token}@remote.example>\r\n\r\ntopology-{token}\r\n{filler}"
    ).encode()


class DirectIMAP(imaplib.IMAP4):
    """imaplib to one front end, from CLIENT_HOST (not the balancer: no PROXY header)."""

    def _create_socket(self, timeout):  # noqa: ANN001, ANN202
        return socket.create_connection(
            (self.host, self.port), timeout, source_address=(CLIENT_HOST, 0)
        )


def front_end(cluster: Cluster, name: str, port: str) -> tuple[str, int]:
    node = cluster.nodes[name]
    return node.address, node.ports[port]


class Idle:
    """An IMAP session in IDLE on one front end, reading untagged EXISTS as they come."""

    def __init__(self, host: str, port: int, user: str) -> None:
        self.sock = socket.create_connection(
            (host, port), timeout=30, source_address=(CLIENT_HOST, 0)
        )
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")
        self.command(f"a LOGIN {user} {PASSWORD}")
        self.exists = int(re.search(rb"\* (\d+) EXISTS", self.command("b SELECT INBOX"))[1])
        self.sock.sendall(b"c IDLE\r\n")
        assert self.file.readline().startswith(b"+ ")

    def command(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r\n")
        tag = line.split()[0].encode()
        lines = b""
        while True:
            got = self.file.readline()
            assert got, "connection closed"
            lines += got
            if got.startswith(tag + b" "):
                assert got.startswith(tag + b" OK"), lines
                return lines

    def wait_exists(self, count: int, timeout: float = WAKE_TIMEOUT) -> float:
        """Seconds until the session is told of `count` messages (AssertionError if not)."""
        started = time.monotonic()
        self.sock.settimeout(timeout)
        while self.exists < count:
            line = self.file.readline()
            assert line, "IDLE session closed"
            if match := re.match(rb"\* (\d+) EXISTS", line):
                self.exists = int(match[1])
            assert time.monotonic() - started < timeout, f"IDLE not woken for {count}"
        return time.monotonic() - started

    def close(self) -> None:
        self.sock.sendall(b"DONE\r\n")
        self.sock.close()


class Load:
    """SMTP senders and IMAP readers through HAProxy, each recording what it was told."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict[str, tuple[str, bool]] = {}  # token -> (mailbox, forwarded outside)
        self.acked_per_box = {local: 0 for local in READERS}
        self.reconnects = {local: 0 for local in READERS}
        self.views: list[tuple[str, int, int]] = []  # (mailbox, acked before login, EXISTS)
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(4)
        ] + [threading.Thread(target=self._read, args=(local,), daemon=True) for local in READERS]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def wait_progress(self, more: int, timeout: float = 60) -> None:
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"no progress:\n{self.cluster.logs()}"
            time.sleep(0.05)

    def _send(self, index: int) -> None:
        rng = random.Random(index)
        while not self.stop.is_set():
            try:
                with smtplib.SMTP(HAPROXY, self.cluster.front["smtp"], timeout=20) as client:
                    for _ in range(rng.randint(1, 5)):  # sessions of a few messages each
                        if self.stop.is_set():
                            break
                        token, local = uuid.uuid4().hex, rng.choice(READERS)
                        outside = rng.random() < 0.3
                        envelope = [address(local)] + ([address("fwd")] if outside else [])
                        raw = message(token, address(local), rng.choice([800, 8000, 80000]))
                        client.sendmail("sender@remote.example", envelope, raw)
                        with self.lock:
                            self.acked[token] = (local, outside)
                            self.acked_per_box[local] += 1
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # a front end died under us: a new connection, elsewhere

    def _read(self, local: str) -> None:
        """Logged in through HAProxy, polling; reconnects when its front end dies, and each
        time checks that the new session sees everything acknowledged before it logged in."""
        first = True
        while not self.stop.is_set():
            try:
                with self.lock:
                    before = self.acked_per_box[local]
                client = imaplib.IMAP4(HAPROXY, self.cluster.front["imap"], timeout=20)
                client.login(address(local), PASSWORD)
                status, data = client.select("INBOX")
                assert status == "OK", data
                with self.lock:
                    self.views.append((local, before, int(data[0])))
                    if not first:
                        self.reconnects[local] += 1
                first = False
                while not self.stop.is_set():
                    # The sequence map of this front end (its UID cache) is read each time.
                    status, data = client.uid("FETCH", "1:*", "(FLAGS)")
                    assert status == "OK", data
                    time.sleep(0.2)
                client.logout()
            except (OSError, imaplib.IMAP4.error, EOFError):
                time.sleep(0.1)
            except AssertionError as exc:
                self.errors.append(str(exc))


def stored_tokens(cluster: Cluster, local: str, front: str | None = None) -> list[str]:
    """Every message's token in the mailbox's INBOX, read through HAProxy (or one front end)."""
    if front is None:
        client = imaplib.IMAP4(HAPROXY, cluster.front["imap"], timeout=60)
    else:
        client = DirectIMAP(*front_end(cluster, front, "imap"), timeout=60)
    client.login(address(local), PASSWORD)
    status, data = client.select("INBOX", readonly=True)
    assert status == "OK"
    tokens = []
    if int(data[0]):
        status, rows = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert status == "OK"
        for row in rows:
            if isinstance(row, tuple) and (match := TOKEN.search(row[1])):
                tokens.append(match[1].decode())
    client.logout()
    return tokens


def uid_map(cluster: Cluster, local: str, front: str) -> list[bytes]:
    """The INBOX's sequence number -> UID map as one front end serves it."""
    client = DirectIMAP(*front_end(cluster, front, "imap"), timeout=60)
    client.login(address(local), PASSWORD)
    client.select("INBOX", readonly=True)
    status, rows = client.fetch("1:*", "(UID)")
    assert status == "OK", rows
    client.logout()
    return rows


def deliver_direct(cluster: Cluster, smtp_name: str, local: str) -> None:
    """One message through one SMTP front end, from CLIENT_HOST (no balancer)."""
    host, port = front_end(cluster, smtp_name, "smtp")
    with smtplib.SMTP(host, port, timeout=20, source_address=(CLIENT_HOST, 0)) as client:
        token = uuid.uuid4().hex
        client.sendmail("sender@remote.example", [address(local)], message(token, local, 500))


def test_killing_a_front_end_and_a_worker_loses_nothing(cluster):
    idle = Idle(*front_end(cluster, "imap2", "imap"), address("carol"))
    load = Load(cluster)
    load.start()
    wakes: list[float] = []
    killed = [("smtp1", WORKERS[0]), ("imap1", WORKERS[1])]
    started = time.monotonic()
    try:
        for round_number in range(ROUNDS):
            load.wait_progress(10)
            front, worker = killed[round_number % len(killed)]
            cluster.kill(front)
            cluster.kill(worker)
            load.wait_progress(5)  # the rest carry the load meanwhile
            cluster.restart(front)
            cluster.restart(worker)
            # IDLE on imap2 hears a delivery through each SMTP front end (the restarted one
            # too) and an APPEND through imap1, all other processes.
            for smtp_name in ("smtp1", "smtp2"):
                deliver_direct(cluster, smtp_name, "carol")
                wakes.append(idle.wait_exists(idle.exists + 1))
            appender = DirectIMAP(*front_end(cluster, "imap1", "imap"), timeout=20)
            appender.login(address("carol"), PASSWORD)
            appender.append("INBOX", None, None, message(uuid.uuid4().hex, "carol", 300))
            appender.logout()
            wakes.append(idle.wait_exists(idle.exists + 1))
        load.wait_progress(10)
    finally:
        load.join()
        idle.close()
    assert not load.errors, load.errors
    rounds_done = time.monotonic()

    acked = dict(load.acked)
    for local in READERS:
        tokens = stored_tokens(cluster, local, "imap1")
        assert len(tokens) == len(set(tokens)), f"{local}: a message stored twice"
        mine = {token for token, (box, _) in acked.items() if box == local}
        assert mine <= set(tokens), f"{local}: acknowledged, not stored: {mine - set(tokens)}"
        # The front end that lived through it all (its UID cache warm since the start) and
        # the restarted one show the same mailbox, message for message.
        assert uid_map(cluster, local, "imap2") == uid_map(cluster, local, "imap1")
    # Clients cut off by the kills came back through the balancer and saw everything that
    # had been acknowledged before they logged in again.
    if ROUNDS >= 2:
        assert sum(load.reconnects.values()) >= 1, load.reconnects
    for local, before, exists in load.views:
        assert exists >= before, (local, before, exists)

    checked = time.monotonic()
    outside = {token for token, (_, forwarded) in acked.items() if forwarded}
    deadline = time.monotonic() + 90
    while True:
        delivered = {
            TOKEN.search(raw)[1].decode()
            for raw in list(cluster.sink.received)
            if TOKEN.search(raw)
        }
        if outside <= delivered or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert outside <= delivered, f"outbound not delivered: {outside - delivered}\n{cluster.logs()}"
    print(
        f"rounds={ROUNDS} acked={len(acked)} outbound={len(outside)}"
        f" sink={len(cluster.sink.received)} reconnects={load.reconnects}"
        f" idle_wake_max={max(wakes):.3f}s rounds={rounds_done - started:.1f}s"
        f" check={checked - rounds_done:.1f}s outbound={time.monotonic() - checked:.1f}s"
    )


def test_failed_logins_on_one_front_end_slow_the_next_on_the_other(cluster):
    """Four wrong passwords on imap1, then one on imap2 from the same client: it waits the
    fifth failure's penalty (4 s), which a limiter per process would not impose."""

    def attempt(name: str) -> float:
        client = DirectIMAP(*front_end(cluster, name, "imap"), timeout=30)
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error):
            client.login(address("dave"), "not-the-password")
        took = time.monotonic() - started
        client.shutdown()
        return took

    waits = [attempt("imap1") for _ in range(4)]
    assert waits[3] >= 1.5  # the third and fourth failures already wait (1 s, 2 s)
    assert attempt("imap2") >= 3.5


def test_pop3_maildrop_is_held_by_one_session_at_a_time(cluster):
    """A POP3 session through HAProxy holds bob's maildrop (the Redis lease): a second login
    takes it over (MAILHOST_POP3_TAKEOVER, the default) and the first is told [IN-USE] at its
    next command; the count matches IMAP's."""
    first = poplib.POP3(HAPROXY, cluster.front["pop3"], timeout=20)
    first.user(address("bob"))
    first.pass_(PASSWORD)
    count, _size = first.stat()
    second = poplib.POP3(HAPROXY, cluster.front["pop3"], timeout=20)
    second.user(address("bob"))
    second.pass_(PASSWORD)
    # The older session is told at its next command, or at its next renewal of the lease
    # (a third of MAILHOST_POP3_LEASE_SECONDS) when the news has not reached it yet.
    deadline = time.monotonic() + 10
    with pytest.raises(poplib.error_proto, match="IN-USE"):
        while time.monotonic() < deadline:
            first.noop()
            time.sleep(0.5)
    first.close()
    assert second.stat()[0] == count == len(stored_tokens(cluster, "bob"))
    second.quit()


def test_every_front_end_listens_on_its_own_address(cluster):
    assert len({node.address for node in cluster.nodes.values() if node.address}) == len(FRONT_ENDS)

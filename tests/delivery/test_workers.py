"""Workers and the sweeper: lost jobs, killed workers, runmail's embedded worker, rqworker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from delivery import housekeeping, queue
from delivery.models import OutboundRecipient, RecipientStatus
from mailhost import runner
from tests.delivery.conftest import PeerHandler, deliver_until, run_queue
from tests.delivery.test_delivery import spool
from tests.support import procsockets
from tests.support.servers import running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def zone(dns_server):
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    return dns_server


@pytest.fixture
def sender(make_mailbox):
    return make_mailbox("alice@example.org")


def status_of(message) -> str:
    return OutboundRecipient.objects.get(message=message).status


def flush_queue() -> None:
    """Lose every queued job, as a flushed or restarted Redis (or a dead process) does."""
    if settings.REDIS_URL:
        queue.rq_queue().connection.flushdb()
    else:
        queue.embedded.clear()


def test_jobs_lost_before_any_attempt_are_swept_back(sender, zone, peers):
    peer = peers.start("127.0.0.2")
    message = spool(["bob@remote.test"])
    flush_queue()
    assert run_queue() == 0
    assert status_of(message) == RecipientStatus.QUEUED
    assert housekeeping.sweep() == 1
    assert housekeeping.sweep() == 0  # already waiting in the queue: not enqueued twice
    run_queue()
    assert status_of(message) == RecipientStatus.DELIVERED
    assert len(peer.received) == 1


def test_redis_flushed_between_attempts_still_delivers(sender, zone, peers, settings):
    settings.MAILHOST_RETRY_SCHEDULE = (0, 0.3)
    peer = peers.start("127.0.0.2", PeerHandler(data_replies=["451 4.3.0 later"]))
    message = spool(["bob@remote.test"])
    run_queue()
    assert status_of(message) == RecipientStatus.DEFERRED
    time.sleep(0.4)
    housekeeping.sweep()  # the retry is enqueued ...
    flush_queue()  # ... and lost
    deliver_until(lambda: status_of(message) == RecipientStatus.DELIVERED)
    assert len(peer.received) == 1
    assert OutboundRecipient.objects.get(message=message).attempts == 2


def test_leased_recipients_are_not_swept(sender, zone, peers):
    from delivery.services import recipients_claim

    message = spool(["bob@remote.test"])
    flush_queue()
    claim = recipients_claim(message_id=message.id)
    assert claim is not None and [r.address for r in claim.recipients] == ["bob@remote.test"]
    assert recipients_claim(message_id=message.id) is None  # held: nobody else gets it
    assert housekeeping.sweep() == 0
    row = OutboundRecipient.objects.get(message=message)
    assert row.attempts == 1 and row.last_attempt_at is not None  # counted before connecting


def test_runmail_worker_family_delivers_and_stops(sender, zone, peers):
    peer = peers.start("127.0.0.2")
    started = time.monotonic()
    with running(runner.DELIVERY) as ports:
        assert "worker" in ports
        message = spool(["bob@remote.test"])
        deadline = time.monotonic() + 20
        while status_of(message) != RecipientStatus.DELIVERED:
            assert time.monotonic() < deadline, "the embedded worker did not deliver"
            time.sleep(0.05)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 10  # clean, prompt shutdown
    assert len(peer.received) == 1
    assert time.monotonic() - started < 30


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


def _start_worker(tmp_path: Path, dns_port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "MAILHOST_DATA_DIR": str(tmp_path),
        "MAILHOST_HOSTNAME": "mx.test.example",
        "MAILHOST_DNS_SERVERS": f"127.0.0.1:{dns_port}",
        "MAILHOST_OUTBOUND_PORT": str(settings.MAILHOST_OUTBOUND_PORT),
        "MAILHOST_DELIVERY_LEASE": "2",
        "MAILHOST_SWEEP_INTERVAL": "0.2",
        "MAILHOST_RETRY_SCHEDULE": "0,0.3",
        "MAILHOST_DELIVERY_THREADS": "1",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
        # django-rq's command, with delivery.rqworker.MailhostWorker (settings.RQ) and its sweeper
        command = [sys.executable, "manage.py", "rqworker", "default"]
    else:
        env.pop("REDIS_URL", None)
        command = [sys.executable, "manage.py", "runworker"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_worker_killed_mid_delivery_delivers_after_restart(sender, zone, peers, tmp_path):
    in_data = threading.Event()
    release = threading.Event()
    calls = []

    def hang_first_time() -> None:
        calls.append(1)
        if len(calls) == 1:
            in_data.set()
            release.wait(30)

    peer = peers.start("127.0.0.2", PeerHandler(on_data=hang_first_time))
    log = tmp_path / "worker.log"
    first = _start_worker(tmp_path, zone.port, log)
    try:
        message = spool(["bob@remote.test"])
        assert in_data.wait(30), log.read_text()
        first.send_signal(signal.SIGKILL)  # mid-DATA: the peer has the message, we have no reply
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    release.set()
    row = OutboundRecipient.objects.get(message=message)
    assert row.status == RecipientStatus.QUEUED and row.attempts == 1 and row.lease_until

    second = _start_worker(tmp_path, zone.port, log)
    try:
        deadline = time.monotonic() + 30
        while status_of(message) != RecipientStatus.DELIVERED:
            assert second.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            code = second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
            raise
    assert code == 0, log.read_text()
    row = OutboundRecipient.objects.get(message=message)
    assert row.attempts == 2
    # Delivered, at most one duplicate (the copy the peer took before the crash), never zero.
    assert 1 <= len(peer.received) <= 2
    assert peer.data_seen == 2


def test_housekeeping_sends_the_dsn_a_crashed_job_left_owed(sender, zone, peers):
    from delivery.services import Outcome, recipients_claim, recipients_record
    from tests.delivery.test_delivery import inbox_messages

    message = spool(["bob@remote.test"])
    flush_queue()
    claim = recipients_claim(message_id=message.id)
    recipients_record(
        token=claim.token,
        outcomes={claim.recipients[0].id: Outcome("failed", "550 5.1.1 gone", "mx1.remote.test")},
    )
    # ... and the job died before message_notify.
    assert inbox_messages(sender) == []
    assert housekeeping.housekeep() == (1, 0)
    assert len(inbox_messages(sender)) == 1
    assert housekeeping.housekeep() == (0, 0)  # once


def test_concurrent_jobs_for_one_message_deliver_it_once(sender, zone, peers):
    from django.db import connections

    from delivery.jobs import deliver_message

    peer = peers.start("127.0.0.2", PeerHandler(on_data=lambda: time.sleep(0.2)))
    message = spool(["bob@remote.test", "carol@remote.test"])
    flush_queue()
    barrier = threading.Barrier(4)
    errors = []

    def job():
        try:
            barrier.wait(5)
            deliver_message(message.id)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(peer.received) == 1
    rows = OutboundRecipient.objects.filter(message=message)
    assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}


def test_delivery_processes_each_deliver_their_share_once(sender, zone, peers, monkeypatch):
    """MAILHOST_DELIVERY_PROCESSES: runmail's worker family as child `runworker` processes,
    each sweeping its share of the spool (message id modulo N) without REDIS_URL, or RQ
    workers with it; every message delivered once."""
    peer = peers.start("127.0.0.2")
    monkeypatch.setenv("DATABASE_URL", _database_url())
    monkeypatch.setenv("MAILHOST_HOSTNAME", "mx.test.example")
    monkeypatch.setenv("MAILHOST_DNS_SERVERS", f"127.0.0.1:{zone.port}")
    monkeypatch.setenv("MAILHOST_OUTBOUND_PORT", str(settings.MAILHOST_OUTBOUND_PORT))
    if settings.REDIS_URL:
        monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    else:
        monkeypatch.delenv("REDIS_URL", raising=False)
    settings.MAILHOST_DELIVERY_PROCESSES = 2
    settings.MAILHOST_DELIVERY_THREADS = 2
    messages = [spool([f"user{i}@remote.test"]) for i in range(10)]
    assert len(queue.embedded) == 0  # nothing for threads of this process
    with running(runner.DELIVERY):
        deadline = time.monotonic() + 60
        while any(status_of(m) != RecipientStatus.DELIVERED for m in messages):
            assert time.monotonic() < deadline, "the delivery processes did not deliver"
            time.sleep(0.1)
    assert sorted(r.rcpt_tos[0] for r in peer.received) == sorted(
        f"user{i}@remote.test" for i in range(10)
    )


class WorkerRecordingPeer(PeerHandler):
    """A peer that notes which of `pids` holds the client end of each session (from /proc,
    while the client waits for the DATA reply), and answers slowly enough that one delivery
    thread cannot take every message."""

    def __init__(self) -> None:
        super().__init__()
        self.pids: list[int] = []
        self.delivered_by: list[int | None] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        import asyncio

        self.delivered_by.append(_holder_of_local_port(session.peer[1], self.pids))
        await asyncio.sleep(0.2)
        return await super().handle_DATA(server, session, envelope)


def _holder_of_local_port(port: int, pids: list[int]) -> int | None:
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.append(fields[9])
    return procsockets.holder(inodes, pids)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="finds the sender in /proc")
def test_every_worker_process_delivers(sender, zone, peers, tmp_path):
    """MAILHOST_PROCESSES=2: each worker process of runmail runs its delivery threads (without
    REDIS_URL on the messages whose id modulo 2 is its number, which worker 0's sweeper hands
    it; with it as RQ workers), and every message is delivered once."""
    from bench.mailhost_process import Mailhost, process_tree

    peer = peers.start("127.0.0.2", WorkerRecordingPeer())
    mailhost = Mailhost(
        tmp_path / "data",
        database_url=_database_url(),
        redis_url=settings.REDIS_URL or None,
        extra_env={
            "MAILHOST_PROCESSES": "2",
            "MAILHOST_DELIVERY_THREADS": "1",
            "MAILHOST_SWEEP_INTERVAL": "0.2",
            "MAILHOST_DNS_SERVERS": f"127.0.0.1:{zone.port}",
            "MAILHOST_OUTBOUND_PORT": str(settings.MAILHOST_OUTBOUND_PORT),
        },
    )
    mailhost.start()
    try:
        workers = process_tree(mailhost.pid)[1:]
        assert len(workers) == 2
        peer.pids = workers
        messages = [spool([f"user{i}@remote.test"]) for i in range(8)]
        deadline = time.monotonic() + 180
        while any(status_of(m) != RecipientStatus.DELIVERED for m in messages):
            assert time.monotonic() < deadline, f"not delivered:\n{mailhost.log_tail()}"
            time.sleep(0.1)
    finally:
        mailhost.stop()
    assert sorted(r.rcpt_tos[0] for r in peer.received) == sorted(
        f"user{i}@remote.test" for i in range(8)
    )
    assert set(peer.delivered_by) == set(workers)

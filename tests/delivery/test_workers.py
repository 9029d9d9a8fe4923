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


def test_delivery_processes_each_deliver_their_share_once(
    sender, zone, peers, monkeypatch, settings
):
    """MAILHOST_DELIVERY_PROCESSES: runmail's worker family as child `runworker` processes,
    each sweeping its share of the spool (message id modulo N) without REDIS_URL, or RQ
    workers with it; every message delivered once."""
    peer = peers.start("127.0.0.2")
    _delivery_processes_env(monkeypatch, settings, zone)
    messages = [spool([f"user{i}@remote.test"]) for i in range(10)]
    assert len(queue.embedded) == 0  # nothing for threads of this process
    with running(runner.DELIVERY):
        _wait_delivered(messages)
    assert sorted(r.rcpt_tos[0] for r in peer.received) == sorted(
        f"user{i}@remote.test" for i in range(10)
    )


def _delivery_children() -> list[int]:
    """This process's `runworker` children (DeliveryProcesses), from /proc."""
    from bench.mailhost_process import process_tree

    return [
        pid
        for pid in process_tree(os.getpid())[1:]
        if b"runworker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _cpu_ticks(pids: list[int]) -> int:
    """User plus system CPU of these processes so far, in clock ticks (/proc/PID/stat)."""
    return sum(
        sum(
            int(field)
            for field in Path(f"/proc/{pid}/stat").read_text().rsplit(")")[1].split()[11:13]
        )
        for pid in pids
    )


def _delivery_processes_env(monkeypatch, settings, zone) -> None:  # noqa: ANN001
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
    settings.MAILHOST_SWEEP_INTERVAL = 3600  # the children's sweep: at most SHARE_SWEEP_INTERVAL


def _wait_delivered(messages, seconds: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while any(status_of(m) != RecipientStatus.DELIVERED for m in messages):
        assert time.monotonic() < deadline, "the delivery processes did not deliver"
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU times in /proc")
def test_idle_delivery_processes_do_not_poll(sender, zone, peers, monkeypatch, settings):
    """Idle delivery processes wait for work rather than sweeping the spool every 0.1 s (they
    did: ~16 ms of CPU a second each, on a server with nothing to do). A CPU counter, not a
    clock: 2 children over 3 s polled for 8-10 ticks of 10 ms; waiting, for 0-1."""
    peers.start("127.0.0.2")
    _delivery_processes_env(monkeypatch, settings, zone)
    message = spool(["first@remote.test"])
    with running(runner.DELIVERY):
        _wait_delivered([message])  # the children are up (their first sweep found it)
        children = _delivery_children()
        assert len(children) == 2
        time.sleep(1)  # the delivery's own after-work (connections closed, recorded)
        before = _cpu_ticks(children)
        time.sleep(3)
        used = _cpu_ticks(children) - before
    assert used <= 4, f"idle delivery processes used {used} ticks of CPU in 3 s"


def test_message_spooled_while_delivery_processes_idle_is_delivered(
    sender, zone, peers, monkeypatch, settings
):
    """The children are handed what is spooled (through a pipe from the process that started
    them, or RQ with REDIS_URL) rather than finding it by their sweep, which here would come
    only after an hour."""
    from delivery import worker

    peer = peers.start("127.0.0.2")
    _delivery_processes_env(monkeypatch, settings, zone)
    monkeypatch.setattr(worker, "SHARE_SWEEP_INTERVAL", 3600)
    first = spool(["first@remote.test"])
    with running(runner.DELIVERY):
        _wait_delivered([first])  # by the children's first sweep
        time.sleep(0.5)  # idle
        later = [spool([f"later{i}@remote.test"]) for i in range(4)]  # both shares
        _wait_delivered(later)
    assert sorted(r.rcpt_tos[0] for r in peer.received) == sorted(
        ["first@remote.test"] + [f"later{i}@remote.test" for i in range(4)]
    )


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="with REDIS_URL the children are RQ workers")
def test_other_workers_hand_delivery_processes_messages_to_worker_0(monkeypatch, settings):
    """MAILHOST_PROCESSES with MAILHOST_DELIVERY_PROCESSES: the delivery processes are worker
    0's children, so another worker tells worker 0 of what it spooled, and worker 0 hands it
    to them (rather than into an embedded queue that no thread of its own reads)."""
    from mailhost import fanout

    settings.MAILHOST_DELIVERY_PROCESSES = 2
    sent = []
    monkeypatch.setattr(fanout, "active", lambda: True)
    monkeypatch.setattr(fanout, "worker_slot", lambda: 1)
    monkeypatch.setattr(
        fanout, "send", lambda topic, message, to=None: sent.append((topic, message, to))
    )
    assert queue.enqueue(7) is True
    assert sent == [(queue.TOPIC, {"id": 7}, 0)]

    handed = []
    queue.hand_off_to(lambda message_id: handed.append(message_id) or True)
    try:
        queue._heard({"id": 7})  # in worker 0, from the fanout
    finally:
        queue.hand_off_to(None)
    assert handed == [7]
    assert len(queue.embedded) == 0


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


def _one_delivery_thread_until(done, seconds: float = 20) -> None:  # noqa: ANN001
    """Run one embedded delivery thread (delivery.worker.DeliveryService, no sweeper) until
    `done()` or `seconds` have passed (the caller asserts what it expected), then stop it."""
    from delivery.worker import DeliveryService

    service = DeliveryService(threads=1, threads_only=True)
    service.start()
    try:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        service.close()
        service.join()


def test_a_result_written_ahead_of_its_dsn_is_kept_when_that_write_fails(
    sender, zone, peers, monkeypatch
):
    """A recipient that may be owed a DSN (NOTIFY=SUCCESS) has its result written by its
    delivery thread at once, ahead of the DSN (delivery.jobs.deliver_claim), not kept for the
    next claim. When that write fails, the result joins those the process's threads keep
    (the Claimer's), written with the next claim or at the stop, and the DSN is
    housekeeping's: before, it was dropped, the recipient stayed leased until the lease ran
    out and was then delivered again."""
    from datetime import timedelta

    from django.utils import timezone

    from delivery.services import SpoolRecipient
    from tests.delivery.test_delivery import inbox_messages

    peer = peers.start("127.0.0.2")
    failed = _results_write_fails_once(monkeypatch)
    message = spool([SpoolRecipient("bob@remote.test", notify="SUCCESS")])
    _one_delivery_thread_until(lambda: failed and status_of(message) == RecipientStatus.DELIVERED)
    assert failed
    row = OutboundRecipient.objects.get(message=message)
    assert (row.status, row.lease_token, row.attempts) == (RecipientStatus.DELIVERED, "", 1)
    # Whatever lease is left runs out: nothing is attempted again.
    OutboundRecipient.objects.exclude(lease_token="").update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    housekeeping.sweep()
    run_queue()
    assert len(peer.received) == 1
    assert housekeeping.housekeep() == (1, 0)  # the "relayed" DSN the thread did not send
    assert len(inbox_messages(sender)) == 1


def _claims_refused(refused: bool) -> None:
    """A trigger that makes the database refuse every claim's UPDATE (a lease token set),
    in this thread's connection; False drops it."""
    from django.db import connection

    table = connection.ops.quote_name(OutboundRecipient._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if refused:
                cursor.execute(
                    "CREATE FUNCTION refuse_claims() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'claims refused'; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER refuse_claims BEFORE UPDATE OF lease_token ON {table}"
                    " FOR EACH ROW WHEN (NEW.lease_token <> '') EXECUTE FUNCTION refuse_claims()"
                )
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS refuse_claims ON {table}")
                cursor.execute("DROP FUNCTION IF EXISTS refuse_claims()")
        elif refused:
            cursor.execute(
                f"CREATE TRIGGER refuse_claims BEFORE UPDATE OF lease_token ON {table}"
                " WHEN NEW.lease_token <> '' BEGIN SELECT RAISE(ABORT, 'claims refused'); END"
            )
        else:
            cursor.execute("DROP TRIGGER IF EXISTS refuse_claims")


def test_the_messages_of_a_claim_that_failed_are_queued_again(sender, zone, peers, monkeypatch):
    """A claim whose transaction fails (the database refuses its UPDATE) has taken its
    messages off the queue: the one the claimer waited for, the backlog it took with it and,
    on SQLite, those it took once the writer locks were held (services._claim_shared's
    `more`; here all but the first). They are queued again (delivery.worker.CLAIM_RETRY
    later), not left to the sweeper a MAILHOST_SWEEP_INTERVAL later: none runs here, and
    before, those messages stayed queued."""
    from delivery import worker

    peer = peers.start("127.0.0.2")
    monkeypatch.setattr(worker, "batch_size", lambda backlog, idle: 0)  # the rest by `more`
    claim_batch = worker.claim_batch
    failures = []

    def claim_batch_once_refused(message_ids, previous=None, more=None):  # noqa: ANN001, ANN202
        try:
            return claim_batch(message_ids, previous, more)
        except Exception as exc:
            failures.append(exc)
            _claims_refused(False)  # the next claims go through
            raise

    monkeypatch.setattr(worker, "claim_batch", claim_batch_once_refused)
    messages = [spool([f"user{n}@remote.test"]) for n in range(3)]
    _claims_refused(True)
    try:
        _one_delivery_thread_until(
            lambda: all(status_of(m) == RecipientStatus.DELIVERED for m in messages)
        )
    finally:
        _claims_refused(False)
    assert len(failures) == 1
    assert [status_of(m) for m in messages] == [RecipientStatus.DELIVERED] * 3
    assert sorted(r.rcpt_tos[0] for r in peer.received) == [
        f"user{n}@remote.test" for n in range(3)
    ]
    assert set(OutboundRecipient.objects.values_list("attempts", flat=True)) == {1}


def _claim_taken_over(message) -> tuple:  # noqa: ANN001
    """A claim of the message whose lease ran out (claimed longer ago than half the lease,
    so that its attempt renews it before connecting: jobs.claim_keeper), then another claim
    of it, which took the recipients over; returns both."""
    import dataclasses
    from datetime import timedelta

    from django.utils import timezone

    from delivery.services import recipients_claim

    first = recipients_claim(message_id=message.pk)
    OutboundRecipient.objects.filter(message=message).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    second = recipients_claim(message_id=message.pk)
    assert first is not None and second is not None
    aged = first.claimed_at - settings.MAILHOST_DELIVERY_LEASE
    return dataclasses.replace(first, claimed_at=aged), second


def test_a_claim_taken_over_by_another_is_not_attempted_again(sender, zone, peers):
    """A claim whose lease ran out before its attempt connected (it waited behind slow
    deliveries: delivery.worker.Claimer), and which another claim took over meanwhile (the
    sweeper found the recipients due), renews nothing (services.lease_extend: by the claim's
    token, which the new claim replaced, so the new claim's lease is left as it is) and
    learns so (jobs.claim_keeper): it does not connect, and the message is delivered once,
    by the claim that holds it. Before, the first claim delivered it too."""
    from delivery.jobs import deliver_claim
    from delivery.services import lease_extend

    peer = peers.start("127.0.0.2")
    message = spool(["bob@remote.test"])
    flush_queue()
    first, second = _claim_taken_over(message)
    lease = OutboundRecipient.objects.get(message=message).lease_until
    lease_extend(token=first.token)
    row = OutboundRecipient.objects.get(message=message)
    assert (row.lease_token, row.lease_until) == (second.token, lease)
    deliver_claim(first)
    assert peer.data_seen == 0
    deliver_claim(second)
    assert len(peer.received) == 1
    row = OutboundRecipient.objects.get(message=message)
    assert (row.status, row.lease_token) == (RecipientStatus.DELIVERED, "")


def test_a_claim_taken_over_by_another_files_nothing_here(sender, zone, peers):
    """A local recipient's filing commits with its spool result (services.
    recipients_deliver_local), which a claim taken over by another writes for no row: the
    filing is rolled back with it, and the message is filed once, by the claim that holds
    it. Before, the first claim filed it too."""
    from delivery.jobs import deliver_claim
    from tests.delivery.test_delivery import inbox_messages

    message = spool(["alice@example.org"])
    flush_queue()
    first, second = _claim_taken_over(message)
    deliver_claim(first)
    assert inbox_messages(sender) == []
    deliver_claim(second)
    assert len(inbox_messages(sender)) == 1
    row = OutboundRecipient.objects.get(message=message)
    assert (row.status, row.lease_token) == (RecipientStatus.DELIVERED, "")


def test_a_batch_goes_on_past_a_message_whose_results_write_fails(sender, zone, peers, monkeypatch):
    """deliver_messages (an RQ job's batch, one claim): when the write of one message's
    results ahead of its DSN fails, the batch's other messages, claimed with it, are still
    attempted in this job; before, the job ended there and they waited out their leases."""

    from delivery.jobs import deliver_messages
    from delivery.services import SpoolRecipient

    peer = peers.start("127.0.0.2")
    first = spool([SpoolRecipient("bob@remote.test", notify="SUCCESS")])
    second = spool(["carol@remote.test"])
    flush_queue()
    failed = _results_write_fails_once(monkeypatch)
    counts = deliver_messages([first.pk, second.pk])
    assert failed
    assert counts[second.pk] == {RecipientStatus.DELIVERED: 1}
    assert sorted(r.rcpt_tos[0] for r in peer.received) == ["bob@remote.test", "carol@remote.test"]
    assert {status_of(first), status_of(second)} == {RecipientStatus.DELIVERED}


def _results_write_fails_once(monkeypatch) -> list:  # noqa: ANN001
    """services.recipients_results_write refuses its first call (the database went away);
    the list returned is empty until it has."""
    from django.db import OperationalError

    from delivery import services

    write = services.recipients_results_write
    failed: list[bool] = []

    def fails_once(rows) -> None:  # noqa: ANN001
        if not failed:
            failed.append(True)
            raise OperationalError("the database went away")
        write(rows)

    monkeypatch.setattr(services, "recipients_results_write", fails_once)
    return failed

"""Connection reuse and politeness per destination, counted at the peers.

Several messages to one MX over one session (RSET only after a transaction left open), the
idle session closed after
MAILHOST_OUTBOUND_IDLE_TIMEOUT, at most MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY sessions at
once, a 421 that slows the destination down, and a failing or slow destination that does
not hold up mail to another one.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from delivery import client
from delivery import destinations as destinations_module
from delivery.destinations import destinations
from delivery.models import OutboundRecipient, RecipientStatus
from mailhost import runner
from tests.delivery.conftest import PeerHandler, deliver_until, run_queue
from tests.delivery.test_delivery import spool
from tests.support.servers import running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]


class CountingHandler(PeerHandler):
    """A peer that also counts sessions, RSETs, QUITs, sessions open at once and
    transactions in progress at once."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lock = threading.Lock()
        self.sessions = 0
        self.open = 0
        self.max_open = 0
        self.in_transaction = 0
        self.max_in_transaction = 0
        self.rsets = 0
        self.quits = 0

    def connected(self) -> None:
        with self.lock:
            self.sessions += 1
            self.open += 1
            self.max_open = max(self.max_open, self.open)

    def disconnected(self) -> None:
        with self.lock:
            self.open -= 1

    async def handle_RSET(self, server, session, envelope):
        self.rsets += 1
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        self.quits += 1
        return "221 Bye"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.in_transaction += 1
            self.max_in_transaction = max(self.max_in_transaction, self.in_transaction)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            with self.lock:
                self.in_transaction -= 1


class CountingSMTP(SMTP):
    def connection_made(self, transport) -> None:
        self.event_handler.connected()
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        self.event_handler.disconnected()
        super().connection_lost(error)


class CountingController(Controller):
    def factory(self):
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


def start_peer(peers, address: str, handler: CountingHandler) -> CountingHandler:
    controller = CountingController(
        handler, hostname=address, port=peers.port, server_hostname=f"peer-{address}"
    )
    controller.start()
    peers.controllers[address] = controller
    # The controller's own readiness check was a session: count from here.
    wait_for(lambda: handler.open == 0)
    handler.sessions = handler.max_open = handler.quits = 0
    return handler


@pytest.fixture
def zone(make_mailbox, dns_server):
    make_mailbox("alice@example.org")
    for domain, address in (("remote.test", "127.0.0.2"), ("other.test", "127.0.0.4")):
        dns_server.add(domain, "MX", f"10 mx.{domain}.")
        dns_server.add(f"mx.{domain}", "A", address)
    return dns_server


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def statuses() -> set[str]:
    return set(OutboundRecipient.objects.values_list("status", flat=True))


def test_messages_to_one_mx_share_one_session(zone, peers):
    peer = start_peer(peers, "127.0.0.2", CountingHandler())
    for index in range(5):
        spool([f"user{index}@remote.test"])
    run_queue()
    assert statuses() == {RecipientStatus.DELIVERED}
    assert len(peer.received) == 5
    assert peer.sessions == 1  # one connection for the five messages
    # Each transaction ended with the reply to its data, which cleared the peer's buffers
    # (RFC 5321 4.1.1.4): the next one starts with MAIL, no RSET round trip.
    assert peer.rsets == 0
    assert client.connection_cache.idle_count() == 1  # still open for the next one


def test_a_transaction_left_open_is_reset_before_the_next_message(zone, peers):
    # The peer takes MAIL and refuses the only recipient: no DATA, the transaction stays
    # open at the peer (a second MAIL would be refused as nested, 503).
    handler = CountingHandler(rcpt_replies={"bob@remote.test": "550 5.1.1 no such user"})
    peer = start_peer(peers, "127.0.0.2", handler)
    refused = spool(["bob@remote.test"])
    run_queue()
    assert OutboundRecipient.objects.get(message=refused).status == RecipientStatus.FAILED
    spool(["carol@remote.test"])
    run_queue()
    assert [r.rcpt_tos for r in peer.received] == [["carol@remote.test"]]
    assert peer.sessions == 1 and peer.rsets == 1  # RFC 5321 4.1.1.5


class ClosingHandler(CountingHandler):
    """A peer that answers the second MAIL of the first session with 421, as a server that
    closes an idle session does (RFC 5321 3.8)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mails = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mails += 1
        if self.mails == 2:
            return "421 4.4.2 idle session closed"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)


def test_a_421_to_the_first_mail_of_a_cached_session_is_a_stale_session(zone, peers):
    peer = start_peer(peers, "127.0.0.2", ClosingHandler())
    limits = destinations.limits("remote.test")
    spool(["bob@remote.test"])
    run_queue()
    spool(["carol@remote.test"])
    run_queue()
    assert statuses() == {RecipientStatus.DELIVERED}
    assert [r.rcpt_tos for r in peer.received] == [["bob@remote.test"], ["carol@remote.test"]]
    assert peer.sessions == 2  # carol's went over a new session
    # Neither a failure nor a throttling destination: the session was gone, not refused.
    assert destinations.limits("remote.test") == limits
    row = OutboundRecipient.objects.get(address="carol@remote.test")
    assert row.attempts == 1


def test_idle_session_is_closed_after_the_idle_timeout(zone, peers, settings):
    settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT = 2  # long enough to look before it ends, loaded
    peer = start_peer(peers, "127.0.0.2", CountingHandler())
    spool(["bob@remote.test"])
    run_queue()
    assert len(peer.received) == 1
    assert peer.open == 1 and peer.quits == 0  # kept for the next message
    wait_for(lambda: peer.open == 0, timeout=10)
    assert peer.quits == 1  # closed politely, by the cache's own thread
    assert client.connection_cache.idle_count() == 0
    spool(["carol@remote.test"])
    run_queue()
    assert peer.sessions == 2 and peer.rsets == 0  # a new session, not the closed one


def test_a_session_the_peer_closed_meanwhile_costs_no_message(zone, peers):
    peer = start_peer(peers, "127.0.0.2", CountingHandler())
    spool(["bob@remote.test"])
    run_queue()
    # The peer drops the idle session (its own timeout); our MAIL finds it gone.
    peers.controllers["127.0.0.2"].stop()
    peer = start_peer(peers, "127.0.0.2", CountingHandler())
    spool(["carol@remote.test"])
    run_queue()
    assert statuses() == {RecipientStatus.DELIVERED}
    assert [r.rcpt_tos for r in peer.received] == [["carol@remote.test"]]


def test_reuse_limit_closes_the_session_after_that_many_messages(zone, peers, settings):
    settings.MAILHOST_OUTBOUND_REUSE_LIMIT = 2
    peer = start_peer(peers, "127.0.0.2", CountingHandler())
    for index in range(5):
        spool([f"user{index}@remote.test"])
    run_queue()
    assert len(peer.received) == 5
    assert peer.sessions == 3  # 2 + 2 + 1


def test_idle_timeout_zero_means_a_session_per_message(zone, peers, settings):
    settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT = 0
    peer = start_peer(peers, "127.0.0.2", CountingHandler())
    for index in range(3):
        spool([f"user{index}@remote.test"])
    run_queue()
    assert len(peer.received) == 3
    # The client does not wait for the peer's 221: the peer's thread counts the last QUIT
    # a moment after the queue run returns.
    deadline = time.monotonic() + 5
    while peer.quits < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert peer.sessions == 3 and peer.quits == 3


def test_concurrency_limit_per_destination_is_respected(zone, peers, settings):
    settings.MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY = 2
    settings.MAILHOST_DELIVERY_THREADS = 6
    settings.MAILHOST_SWEEP_INTERVAL = 0.2
    peer = start_peer(peers, "127.0.0.2", CountingHandler(on_data=lambda: time.sleep(0.3)))
    other = start_peer(peers, "127.0.0.4", CountingHandler(on_data=lambda: time.sleep(0.3)))
    for index in range(8):
        spool([f"user{index}@remote.test"])
        spool([f"user{index}@other.test"])
    with running(runner.DELIVERY):
        wait_for(lambda: len(peer.received) == 8 and len(other.received) == 8, timeout=30)
    assert peer.max_in_transaction == 2 and other.max_in_transaction == 2
    assert peer.max_open <= 2 and other.max_open <= 2
    assert statuses() == {RecipientStatus.DELIVERED}
    # Those deferred while the destination was busy were not counted as attempts.
    assert set(OutboundRecipient.objects.values_list("attempts", flat=True)) == {1}


def test_a_421_slows_the_destination_down(zone, peers, settings, monkeypatch):
    # A slower throttled rate than the default 1/s, so that a loaded machine's pauses
    # between the two attempts stay well inside the wait.
    monkeypatch.setattr(destinations_module, "THROTTLED_RATE", 0.25)
    settings.MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY = 5
    handler = CountingHandler(rcpt_replies={"bob@remote.test": "421 4.7.0 Too many messages"})
    peer = start_peer(peers, "127.0.0.2", handler)
    assert destinations.limits("remote.test") == (5, 0)
    spool(["bob@remote.test"])
    run_queue()
    refused_at = time.monotonic()
    assert destinations.limits("remote.test") == (1, 0.25)
    # A session that said 421 is not kept: its QUIT (sent without waiting for the reply)
    # reaches the peer's thread soon, not after the 5 s idle timeout a kept one would wait.
    wait_for(lambda: peer.quits == 1, timeout=2)
    message = spool(["carol@remote.test"])
    run_queue()  # at once: too soon for the lowered rate
    row = OutboundRecipient.objects.get(message=message)
    assert row.status == RecipientStatus.DEFERRED and row.attempts == 0
    assert "delivery paused, rate of 0.25 message(s)/s" in row.last_reply
    deliver_until(lambda: len(peer.received) == 1, timeout=15)
    assert time.monotonic() - refused_at >= 2.5  # 4 s after the 421, less our own pauses
    row.refresh_from_db()
    assert row.status == RecipientStatus.DELIVERED and row.attempts == 1


def blackhole(address: str, port: int) -> list[socket.socket]:
    """A listener whose accept queue is full: further SYNs are dropped, so connecting there
    hangs until the connect timeout, like a firewalled or dead host."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(0)
    fillers = []
    for _ in range(4):  # fill the queue (the kernel takes backlog + 1)
        s = socket.socket(family)
        s.setblocking(False)
        s.connect_ex((address, port))
        fillers.append(s)
    time.sleep(0.1)
    return [listener, *fillers]  # close them all to end it


def test_a_failing_destination_backs_off_and_does_not_delay_another(zone, peers, settings):
    settings.MAILHOST_OUTBOUND_CONNECT_TIMEOUT = 2
    zone.add("dead.test", "MX", "10 mx.dead.test.")
    zone.add("mx.dead.test", "A", "127.0.0.5")
    hole = blackhole("127.0.0.5", peers.port)
    try:
        peer = start_peer(peers, "127.0.0.2", CountingHandler())
        dead = [spool([f"user{i}@dead.test"]) for i in range(3)]
        live = [spool([f"user{i}@remote.test"]) for i in range(3)]
        started = time.monotonic()
        run_queue()
        elapsed = time.monotonic() - started
    finally:
        for s in hole:
            s.close()
    assert len(peer.received) == 3
    assert all(
        OutboundRecipient.objects.get(message=m).status == RecipientStatus.DELIVERED for m in live
    )
    # One connect timeout for the dead destination (2 s), not one per message (6 s).
    assert elapsed < 5
    rows = [OutboundRecipient.objects.get(message=m) for m in dead]
    assert [r.attempts for r in rows] == [1, 0, 0]
    assert all(r.status == RecipientStatus.DEFERRED for r in rows)
    assert all("delivery paused, backing off after 1 failure(s)" in r.last_reply for r in rows[1:])


def test_a_slow_destination_does_not_hold_the_threads(zone, peers, settings):
    settings.MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY = 1
    settings.MAILHOST_DELIVERY_THREADS = 3
    settings.MAILHOST_SWEEP_INTERVAL = 0.2
    slow = start_peer(peers, "127.0.0.2", CountingHandler(on_data=lambda: time.sleep(1.0)))
    fast = start_peer(peers, "127.0.0.4", CountingHandler())
    for index in range(3):
        spool([f"user{index}@remote.test"])
    for index in range(2):
        spool([f"user{index}@other.test"])
    started = time.monotonic()
    with running(runner.DELIVERY):
        wait_for(lambda: len(fast.received) == 2, timeout=30)
        fast_done = time.monotonic() - started
        wait_for(lambda: len(slow.received) == 3, timeout=30)
        slow_done = time.monotonic() - started
    assert slow_done >= 3.0  # one session at a time there, a second a message
    # The fast domain did not wait behind the slow one (its second message may wait for
    # its own single session: one BUSY_RETRY).
    assert fast_done < slow_done - 1.0
    assert slow.max_in_transaction == 1


def test_a_sessions_aim_is_every_security_field_but_the_report_counter():
    """A cached session serves a message whose HostSecurity has the same aim (every field but
    tlsrpt, by value); a field added to HostSecurity must be placed in or out of it here."""
    from dataclasses import fields, replace

    from delivery.client import HostSecurity
    from delivery.dane import DaneHost, Tlsa

    def dane() -> DaneHost:
        return DaneHost(records=(Tlsa(usage=3, selector=1, mtype=1, data=b"\x01" * 32),))

    base = HostSecurity("dane", enforce=True, dane=dane(), reason="why", tlsrpt=object())
    others = {"protection": "tls", "enforce": False, "dane": None, "reason": "", "tlsrpt": None}
    assert set(others) == {f.name for f in fields(HostSecurity)}
    for name, value in others.items():
        other = replace(base, **{name: value})
        assert (other.aim() == base.aim()) is (name == "tlsrpt"), name
    assert replace(base, dane=dane(), tlsrpt=object()).aim() == base.aim()


def test_a_session_put_back_does_not_wake_the_reaper(settings):
    """The connection cache's reaper sleeps until the oldest idle session runs out: a
    message that takes a session and puts it back does not wake it (before: every put did,
    and the reaper swept the cache, often found it empty, ended and was started again)."""
    import threading

    settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT = 60
    cache = client.ConnectionCache()
    woken = []

    class Counting(type(cache._lock)):
        def wait(self, timeout=None):  # noqa: ANN001, ANN202
            result = super().wait(timeout)
            if threading.current_thread().name == "outbound-connection-cache":
                woken.append(1)
            return result

    cache._lock = Counting()
    conn = client.Connection.__new__(client.Connection)
    conn.throttled, conn.transactions = False, 0
    starts = []
    real_start = threading.Thread.start
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(threading.Thread, "start", lambda t: starts.append(t.name) or real_start(t))
        for _ in range(100):
            cache.put(("peer",), conn)
            time.sleep(0.001)  # the reaper gets its turn
            assert cache.take(("peer",)) is conn
    assert starts == ["outbound-connection-cache"]
    assert woken == []
    cache._idle.clear()
    with cache._lock:
        cache._lock.notify()


def _recording(monkeypatch, name: str) -> set[str]:
    """The delivery threads that call delivery.worker's `name` (claim_batch, deliver_claim)."""
    from delivery import worker

    threads: set[str] = set()
    real = getattr(worker, name)

    def recorded(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, name, recorded)
    return threads


def test_messages_one_after_another_are_claimed_by_one_thread_over_one_session(
    zone, peers, monkeypatch
):
    """Eight delivery threads, ten messages to one MX spooled one after the other (each once
    the last has arrived): one session carries them all, one thread claims them all (the
    claimer claims on while an idle thread waits for each message it claimed), and only a
    thread or two besides it open a database connection. Before, the claimer's part went
    to the thread woken for it after every claim, in turn every thread of the process (a
    Condition wakes the longest waiting first): eight threads claimed the ten, and each
    opened a connection of its own (on SQLite, its schema read again)."""
    from django.db.backends.signals import connection_created

    from delivery import worker

    peer = start_peer(peers, "127.0.0.2", CountingHandler())
    claimed = _recording(monkeypatch, "claim_batch")
    attempted = _recording(monkeypatch, "deliver_claim")
    connected = set()

    def created(sender, connection, **kwargs) -> None:
        name = threading.current_thread().name
        if name.startswith("delivery-"):
            connected.add(name)

    connection_created.connect(created, weak=False)
    service = worker.DeliveryService(threads=8, threads_only=True)
    service.start()
    try:
        for index in range(10):
            spool([f"user{index}@remote.test"])
            wait_for(lambda count=index + 1: len(peer.received) == count)
    finally:
        service.close()
        service.join()
        connection_created.disconnect(created)
    assert statuses() == {RecipientStatus.DELIVERED}
    assert peer.sessions == 1  # reused from message to message, whichever thread sent it
    assert len(claimed) == 1
    assert attempted and not attempted & claimed  # handed to idle threads
    assert len(connected) <= 3  # the claimer's, and an MTA-STS policy read or two


def test_a_burst_to_one_mx_takes_no_more_sessions_than_threads(zone, peers):
    """Eight delivery threads, three bursts of twelve messages to one slow MX: the threads
    send side by side, each session reused by whichever thread comes next, so the 36
    messages take at most eight sessions, never more than eight open at once."""
    from delivery import worker

    peer = start_peer(peers, "127.0.0.2", CountingHandler(on_data=lambda: time.sleep(0.05)))
    service = worker.DeliveryService(threads=8, threads_only=True)
    service.start()
    try:
        for burst in range(3):
            for index in range(12):
                spool([f"user{burst}-{index}@remote.test"])
            wait_for(lambda count=12 * (burst + 1): len(peer.received) == count, timeout=30)
    finally:
        service.close()
        service.join()
    assert statuses() == {RecipientStatus.DELIVERED}
    assert peer.max_in_transaction >= 2  # side by side
    assert peer.sessions <= 8 and peer.max_open <= 8

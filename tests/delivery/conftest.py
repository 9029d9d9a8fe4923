"""Delivery test fixtures: a real DNS server on 127.0.0.1, SMTP peers on 127.0.0.x.

The DNS server is dnspython's message codec over a UDP socket in a thread; delivery asks it
through settings.MAILHOST_DNS_SERVERS, as in production. The peers are aiosmtpd servers on
distinct loopback addresses that share one port (settings.MAILHOST_OUTBOUND_PORT), with
scripted replies.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from aiosmtpd.controller import Controller
from django.conf import settings

from bench.mailhost_process import free_port as _free_port
from delivery import dns as delivery_dns
from delivery import housekeeping, queue

HOSTNAME = "mx.test.example"


# --- DNS ---------------------------------------------------------------------------------


class TestDNSServer:
    """Authoritative answers for a few names; NXDOMAIN for the rest, SERVFAIL on request, and
    REFUSED for the (name, type) pairs in `refused` (as some broken authoritatives do for AAAA)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.servfail: set[str] = set()
        self.refused: set[tuple[str, str]] = set()
        # Names whose answers carry the AD bit, as a validating resolver gives for a zone
        # signed with DNSSEC (RFC 4035 3.2.3).
        self.signed: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self._thread.start()

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records[name.lower().rstrip(".")][rdtype].extend(values)

    def add_txt(self, name: str, text: str) -> None:
        chunks = [text[i : i + 250] for i in range(0, len(text), 250)]
        self.add(name, "TXT", " ".join(f'"{c}"' for c in chunks))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            self.sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in self.refused:
            response.set_rcode(dns.rcode.REFUSED)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.records[name].get(rdtype):
            if name in self.signed:
                response.flags |= dns.flags.AD
            response.answer.append(
                dns.rrset.from_text(question.name, 60, "IN", rdtype, *self.records[name][rdtype])
            )
        return response

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def txt_lookup(self, name: bytes, timeout: int = 5) -> bytes | None:
        """A dkimpy `dnsfunc` that asks this server over the wire."""
        resolver = delivery_dns.DNSPythonResolver(servers=[("127.0.0.1", self.port)], timeout=5)
        try:
            values = resolver.txt(name.decode().rstrip("."))
        except delivery_dns.DNSError:
            return None
        return values[0] if values else None


@pytest.fixture
def dns_server(settings):
    server = TestDNSServer()
    settings.MAILHOST_DNS_SERVERS = [("127.0.0.1", server.port)]
    settings.MAILHOST_DNS_TIMEOUT = 2.0
    settings.MAILHOST_INBOUND_CHECKS = True  # port 25's checks ask this zone
    delivery_dns.set_resolver(None)
    # A new server may get an old one's port: no answer cached for that port may survive.
    delivery_dns.forget_resolvers()
    yield server
    server.close()
    delivery_dns.forget_resolvers()


# --- SMTP peers --------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    rcpt_options: list[str]
    peer: str = ""  # the address the client connected from


@dataclass
class PeerHandler:
    """Records what arrives; `rcpt_replies[address]` and `data_replies` script refusals."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)  # consumed one per DATA; then 250
    always_data_reply: str | None = None
    received: list[Received] = field(default_factory=list)
    data_seen: int = 0
    on_data: Callable[[], None] | None = None  # runs (in the peer's thread) before replying

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_seen += 1
        if self.on_data is not None:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, self.on_data)
        if self.data_replies:
            return self.data_replies.pop(0)
        if self.always_data_reply:
            return self.always_data_reply
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                list(envelope.mail_options),
                list(envelope.rcpt_options),
                session.peer[0] if session.peer else "",
            )
        )
        return "250 2.0.0 queued as TEST"


class Peers:
    def __init__(self) -> None:
        self.port = _free_port("127.0.0.2")
        self.controllers: dict[str, Controller] = {}

    def start(self, address: str, handler: PeerHandler | None = None, **kwargs) -> PeerHandler:
        handler = handler or PeerHandler()
        controller = Controller(
            handler,
            hostname=address,
            port=self.port,
            server_hostname=f"peer-{address}",
            enable_SMTPUTF8=True,
            **kwargs,
        )
        controller.start()
        self.controllers[address] = controller
        return handler

    def stop_all(self) -> None:
        for controller in self.controllers.values():
            controller.stop()


@pytest.fixture
def peers(settings):
    p = Peers()
    settings.MAILHOST_OUTBOUND_PORT = p.port
    yield p
    p.stop_all()


# --- the queue ---------------------------------------------------------------------------


def run_queue() -> int:
    """Run the queued delivery jobs to the end: a burst-mode RQ worker on real Redis when
    REDIS_URL is set, the embedded queue otherwise."""
    if settings.REDIS_URL:
        from rq.worker import SimpleWorker

        q = queue.rq_queue()
        worker = SimpleWorker([q], connection=q.connection)
        worker.work(burst=True, logging_level="WARNING")
        return worker.successful_job_count
    return queue.embedded.run_burst()


def deliver_until(done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Sweep and run jobs until `done()`; the sweeper is what picks up retries."""
    deadline = time.monotonic() + timeout
    while True:
        run_queue()
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError("delivery did not reach the expected state in time")
        time.sleep(0.05)
        housekeeping.sweep()


def clear_queue() -> None:
    if settings.REDIS_URL:
        q = queue.rq_queue()
        q.empty()
        for key in q.connection.scan_iter(queue.PENDING_KEY.format("*")):
            q.connection.delete(key)
    queue.embedded.clear()


@pytest.fixture(autouse=True)
def _clean_queue():
    """No job of one test is left for the next (the spool rows go with the test database),
    nor a memory of which peers were down, nor an open session, nor a destination's state."""
    from delivery import client
    from delivery.destinations import destinations

    def forget() -> None:
        clear_queue()
        queue.later.clear()
        client.forget_unreachable()
        client.connection_cache.close_all()
        destinations.forget()

    forget()
    yield
    forget()


@pytest.fixture
def delivery_env(live_settings, dns_server, peers, settings):
    """Everything a delivery test needs: DNS zone, peers' port, our hostname."""
    settings.MAILHOST_HOSTNAME = HOSTNAME
    settings.MAILHOST_RELAYHOST = None
    settings.MAILHOST_OUTBOUND_CONNECT_TIMEOUT = 2
    settings.MAILHOST_OUTBOUND_TIMEOUT = 10

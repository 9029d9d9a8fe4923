"""IPv6 beside IPv4 (RFC 8305 style): each MX's A then AAAA addresses, families taking turns,
each connection attempt given CONNECTION_ATTEMPT_DELAY alone before the next starts beside
it, so an address that does not answer costs that delay, not a connect timeout."""

from __future__ import annotations

import time

import pytest

from delivery import client
from delivery.models import OutboundRecipient, RecipientStatus
from tests.delivery.conftest import run_queue
from tests.delivery.test_connection_reuse import blackhole
from tests.delivery.test_delivery import spool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]


def test_family_order_interleaves_ipv4_first():
    addresses = ["2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert client.family_order(addresses) == [
        "192.0.2.1",
        "2001:db8::1",
        "192.0.2.2",
        "2001:db8::2",
        "192.0.2.3",
    ]


@pytest.fixture
def sender(make_mailbox):
    return make_mailbox("alice@example.org")


def delivered_in(seconds: float) -> OutboundRecipient:
    started = time.monotonic()
    message = spool(["bob@remote.test"])
    run_queue()
    elapsed = time.monotonic() - started
    row = OutboundRecipient.objects.get(message=message)
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert elapsed < seconds, elapsed
    return row


def test_an_unanswering_ipv4_address_falls_over_to_ipv6_in_a_moment(
    sender, dns_server, peers, settings, caplog
):
    settings.MAILHOST_OUTBOUND_CONNECT_TIMEOUT = 20
    dns_server.add("remote.test", "MX", "10 mx.remote.test.")
    dns_server.add("mx.remote.test", "A", "127.0.0.5")
    dns_server.add("mx.remote.test", "AAAA", "::1")
    hole = blackhole("127.0.0.5", peers.port)
    try:
        peer = peers.start("::1")
        row = delivered_in(3.0)  # not the 20 s connect timeout
    finally:
        for s in hole:
            s.close()
    assert row.mx_used == "mx.remote.test"
    assert "mx=mx.remote.test[::1]" in caplog.text
    assert len(peer.received) == 1


def test_an_unanswering_ipv6_address_does_not_cost_a_connect_timeout(
    sender, dns_server, peers, settings
):
    # Two hosts' worth of addresses: the IPv6 one of the first MX answers nothing.
    settings.MAILHOST_OUTBOUND_CONNECT_TIMEOUT = 20
    dns_server.add("remote.test", "MX", "10 mx.remote.test.")
    dns_server.add("mx.remote.test", "AAAA", "::1")
    dns_server.add("mx.remote.test", "A", "127.0.0.2")
    hole = blackhole("::1", peers.port)
    try:
        peer = peers.start("127.0.0.2")
        delivered_in(3.0)
    finally:
        for s in hole:
            s.close()
    assert len(peer.received) == 1


def test_a_refused_address_moves_on_at_once(sender, dns_server, peers):
    dns_server.add("remote.test", "MX", "10 mx.remote.test.")
    dns_server.add("mx.remote.test", "A", "127.0.0.3", "127.0.0.2")  # .3: nothing listens
    peer = peers.start("127.0.0.2")
    started = time.monotonic()
    message = spool(["bob@remote.test"])
    run_queue()
    assert time.monotonic() - started < client.CONNECTION_ATTEMPT_DELAY + 1.0
    assert OutboundRecipient.objects.get(message=message).status == RecipientStatus.DELIVERED
    assert len(peer.received) == 1

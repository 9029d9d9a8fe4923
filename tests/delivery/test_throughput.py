"""A bounded load: many spooled messages, every one delivered exactly once."""

from __future__ import annotations

import time

import pytest

from delivery.models import OutboundRecipient
from tests.delivery.conftest import run_queue
from tests.delivery.test_delivery import spool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

MESSAGES = 100


def test_hundred_messages_each_delivered_once(make_mailbox, dns_server, peers):
    make_mailbox("alice@example.org")
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    peer = peers.start("127.0.0.2")
    for _ in range(MESSAGES):
        spool(["bob@remote.test", "carol@remote.test"])
    started = time.perf_counter()
    run_queue()
    elapsed = time.perf_counter() - started
    assert OutboundRecipient.objects.exclude(status="delivered").count() == 0
    assert len(peer.received) == MESSAGES
    assert all(
        sorted(r.rcpt_tos) == ["bob@remote.test", "carol@remote.test"] for r in peer.received
    )
    # One MX lookup for the burst: the shared resolver caches answers for their TTL.
    assert dns_server.queries.count(("remote.test", "MX")) == 1
    print(f"\n{MESSAGES} messages in {elapsed:.2f}s: {MESSAGES / elapsed:.0f} messages/s")


def test_a_delivered_message_costs_its_claim_and_an_update_a_recipient(
    make_mailbox, dns_server, peers
):
    """The delivery job of a message that two recipients accept writes the spool with the
    claim's UPDATE and SELECT and one UPDATE a recipient: its results are written from the
    claim's rows, not read again, and no query asks whether a DSN is owed (none can be)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from delivery.jobs import deliver_message

    make_mailbox("alice@example.org")
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    peer = peers.start("127.0.0.2")
    message = spool(["bob@remote.test", "carol@remote.test"])
    with CaptureQueriesContext(connection) as queries:
        deliver_message(message.pk)
    assert len(peer.received) == 1
    assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {"delivered"}
    spool_statements = [
        q["sql"].split()[0].upper()
        for q in queries.captured_queries
        if "delivery_outboundrecipient" in q["sql"]
    ]
    assert spool_statements == ["UPDATE", "SELECT", "UPDATE", "UPDATE"]

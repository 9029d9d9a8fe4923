"""/metrics counters move with real traffic (issue 18): mail taken on port 25 and 587 over
smtplib, one recipient refused, one delivered to a peer and one deferred by another, all in
one process as runmail runs them; scraped before and after and read with prometheus_client's
parser."""

from __future__ import annotations

import smtplib
import time

import pytest

from delivery.models import OutboundRecipient
from mailhost import runner
from tests.delivery.conftest import PeerHandler
from tests.support.metrics import moved, scrape, value
from tests.support.servers import running
from tests.support.smtp import client_tls_context

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

MESSAGE = b"From: alice@example.org\r\nSubject: counted\r\n\r\nOne of many.\r\n"


def test_counters_move_after_mail_over_smtp(client, make_mailbox, dns_server, peers):
    make_mailbox("alice@example.org")
    make_mailbox("dave@example.org")
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    dns_server.add("slow.test", "MX", "10 mx1.slow.test.")
    dns_server.add("mx1.slow.test", "A", "127.0.0.3")
    delivered = peers.start("127.0.0.2")
    peers.start("127.0.0.3", PeerHandler(always_data_reply="451 4.3.0 come back later"))
    before = scrape(client)
    with running(runner.SMTP, runner.DELIVERY) as ports:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=15) as mta:
            refused = mta.sendmail(
                "carol@remote.test", ["dave@example.org", "nobody@example.org"], MESSAGE
            )
        assert list(refused) == ["nobody@example.org"]
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=15) as msa:
            msa.starttls(context=client_tls_context())
            msa.login("alice@example.org", "secret")
            msa.sendmail("alice@example.org", ["bob@remote.test", "eve@slow.test"], MESSAGE)
        deadline = time.monotonic() + 20
        while True:  # until both outcomes are in (their counters move after the commit)
            after = scrape(client)
            if delivered.received and all(
                moved(before, after, "mailhost_deliveries_total", result=result)
                for result in ("delivered", "deferred")
            ):
                break
            assert time.monotonic() < deadline, list(OutboundRecipient.objects.values())
            time.sleep(0.05)

    assert moved(before, after, "mailhost_connections_total", protocol="smtp") == 1
    assert moved(before, after, "mailhost_connections_total", protocol="submission") == 1
    assert moved(before, after, "mailhost_smtp_accepted_total", protocol="smtp") == 1
    assert moved(before, after, "mailhost_smtp_accepted_total", protocol="submission") == 1
    assert moved(before, after, "mailhost_smtp_accept_seconds_count") == 2
    assert moved(before, after, "mailhost_smtp_accept_seconds_sum") > 0
    assert (
        moved(before, after, "mailhost_smtp_rejections_total", reason="no_such_user", code="550")
        == 1
    )
    assert moved(before, after, "mailhost_logins_total", protocol="smtp", result="success") == 1
    assert moved(before, after, "mailhost_deliveries_total", result="delivered") == 1
    assert moved(before, after, "mailhost_deliveries_total", result="deferred") >= 1
    # Read from the spool at scrape time: eve's recipient waits, bob's is done.
    assert value(after, "mailhost_queue_recipients") == 1
    assert value(after, "mailhost_queue_messages") == 1
    assert value(after, "mailhost_queue_oldest_age_seconds") > 0
    assert value(before, "mailhost_queue_recipients") == 0

"""/metrics (issue 18): logins counted over a real IMAP socket, the IMAP sessions gauge, and
the allow-list, which judges the client as mailhost.proxy.client_address does."""

from __future__ import annotations

import imaplib
import ipaddress

import pytest
from django.db import OperationalError

from mailhost import runner
from tests.support.metrics import moved, scrape, value
from tests.support.servers import running
from tests.support.smtp import client_tls_context


@pytest.mark.django_db(transaction=True)
def test_logins_and_imap_sessions_counted(client, live_settings, make_mailbox):
    make_mailbox("alice@example.org", password="secret")
    before = scrape(client)
    with running(runner.IMAP) as ports:
        tls = client_tls_context()
        imap = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls)
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.org", "wrong")
        other = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls)
        other.login("alice@example.org", "secret")
        during = scrape(client)
        other.logout()
        imap.logout()
    after = scrape(client)
    assert moved(before, after, "mailhost_logins_total", protocol="imap", result="success") == 1
    assert moved(before, after, "mailhost_logins_total", protocol="imap", result="failure") == 1
    assert moved(before, after, "mailhost_connections_total", protocol="imaps") == 2
    assert value(during, "mailhost_imap_sessions") - value(before, "mailhost_imap_sessions") == 2
    assert value(after, "mailhost_imap_sessions") == value(before, "mailhost_imap_sessions")


@pytest.mark.django_db
def test_only_allowed_clients_may_scrape(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5").status_code == 403
    # X-Forwarded-For is believed from trusted proxies only.
    forged = client.get("/metrics", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert forged.status_code == 403
    settings.MAILHOST_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.1"),)
    proxied = client.get("/metrics", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert proxied.status_code == 200
    proxied = client.get("/metrics", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert proxied.status_code == 403
    settings.MAILHOST_METRICS_ALLOW = (ipaddress.ip_network("203.0.113.0/24"),)
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


@pytest.mark.django_db
def test_metrics_is_get_only(client):
    assert client.post("/metrics").status_code == 405


@pytest.mark.django_db
def test_counters_still_scraped_when_the_spool_cannot_be_read(client, monkeypatch):
    from delivery import selectors

    def unreadable():
        raise OperationalError("database is locked")

    assert value(scrape(client), "mailhost_queue_recipients") == 0
    assert ("mailhost_queue_recipients", frozenset()) in scrape(client)
    monkeypatch.setattr(selectors, "queue_summary", unreadable)
    samples = scrape(client)
    assert ("mailhost_queue_recipients", frozenset()) not in samples
    assert any(name == "mailhost_smtp_accept_seconds_count" for name, _ in samples)


@pytest.mark.django_db
def test_a_counter_child_is_looked_up_once_per_label_values(client, monkeypatch):
    # A message moves two or three counters: labels() (its checks, sorting and lock) runs
    # once per label values, and the counts still move at every call.
    from mailhost import metrics

    looked_up = []
    real_labels = metrics.DELIVERIES.labels
    monkeypatch.setattr(
        metrics.DELIVERIES, "labels", lambda *v: looked_up.append(v) or real_labels(*v)
    )
    before = scrape(client)
    for _ in range(3):
        metrics.delivery_result("delivered-test")
    after = scrape(client)
    assert moved(before, after, "mailhost_deliveries_total", result="delivered-test") == 3
    assert looked_up == [("delivered-test",)]

"""The queue in the Django admin: columns, actions, the RQ dashboard link."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from delivery import client
from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus
from tests.delivery.conftest import run_queue
from tests.delivery.test_delivery import inbox_messages, spool, status_blocks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, live_settings):
    user = User.objects.create_superuser("admin", "admin@example.org", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def remote_zone(dns_server):
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    return dns_server


@pytest.fixture
def deferred(make_mailbox):
    sender = make_mailbox("alice@example.org")
    message = spool(["bob@remote.test"])
    later = timezone.now() + timedelta(hours=1)
    OutboundRecipient.objects.filter(message=message).update(
        status=RecipientStatus.DEFERRED,
        attempts=3,
        next_attempt_at=later,
        last_reply="451 4.3.0 greylisted",
        mx_used="mx1.remote.test",
    )
    return sender, message


def test_queue_lists_status_attempts_reply_and_mx(admin_client, deferred):
    _, message = deferred
    page = admin_client.get("/admin/delivery/outboundrecipient/").content.decode()
    for text in ("bob@remote.test", message.queue_id, "deferred", "451 4.3.0 greylisted"):
        assert text in page
    assert "mx1.remote.test" in page
    page = admin_client.get(f"/admin/delivery/outboundmessage/{message.id}/change/")
    assert page.status_code == 200 and b"451 4.3.0 greylisted" in page.content
    listing = admin_client.get("/admin/delivery/outboundmessage/").content.decode()
    assert 'href="/admin/rq/"' in listing
    assert admin_client.get("/admin/rq/").status_code == 200


def test_retry_now(admin_client, deferred):
    _, message = deferred
    response = admin_client.post(
        "/admin/delivery/outboundmessage/",
        {"action": "retry_now", "_selected_action": [message.id]},
    )
    assert response.status_code == 302
    row = OutboundRecipient.objects.get(message=message)
    assert row.next_attempt_at <= timezone.now()


def test_bounce_now_fails_and_notifies(admin_client, deferred, caplog):
    caplog.set_level(logging.INFO, logger="delivery")
    sender, message = deferred
    row = OutboundRecipient.objects.get(message=message)
    admin_client.post(
        "/admin/delivery/outboundrecipient/",
        {"action": "bounce_now", "_selected_action": [row.id]},
    )
    row.refresh_from_db()
    assert row.status == RecipientStatus.FAILED and row.dsn_sent
    [dsn] = inbox_messages(sender)
    [_, block] = status_blocks(dsn)
    assert block["action"] == "failed" and block["status"] == "5.0.0"
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("delivery ")]
    assert line.startswith(
        f"delivery bounced queue={message.queue_id} to=<bob@remote.test> mx=none"
    )
    assert line.endswith('reply="550 5.0.0 delivery cancelled by the administrator"')


def test_delete_from_queue(admin_client, deferred):
    _, message = deferred
    admin_client.post(
        "/admin/delivery/outboundmessage/",
        {"action": "delete_from_queue", "_selected_action": [message.id]},
    )
    assert not OutboundMessage.objects.filter(pk=message.pk).exists()
    assert not OutboundRecipient.objects.exists()


def test_spool_prune_removes_only_old_finished_entries(make_mailbox, settings):
    from delivery.services import spool_prune

    make_mailbox("alice@example.org")
    settings.MAILHOST_QUEUE_KEEP = 3600
    old_done = spool(["bob@remote.test"])
    old_pending = spool(["carol@remote.test"])
    new_done = spool(["dave@remote.test"])
    long_ago = timezone.now() - timedelta(hours=2)
    OutboundMessage.objects.filter(pk__in=[old_done.pk, old_pending.pk]).update(created_at=long_ago)
    OutboundRecipient.objects.filter(message__in=[old_done, new_done]).update(
        status=RecipientStatus.DELIVERED, dsn_sent=True
    )
    blob_name = old_done.blob.name
    assert spool_prune() == 1
    assert set(OutboundMessage.objects.values_list("pk", flat=True)) == {
        old_pending.pk,
        new_done.pk,
    }
    from mailboxes.models import Blob

    assert not Blob.objects.filter(name=blob_name).exists()


@pytest.mark.usefixtures("delivery_env")
def test_retry_now_tries_a_peer_that_was_down_moments_ago(
    admin_client, make_mailbox, remote_zone, peers
):
    # The peer is down: the first attempt fails and the address is remembered as dead.
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test"])
    run_queue()
    row = OutboundRecipient.objects.get(message=message)
    assert (row.status, row.attempts) == (RecipientStatus.DEFERRED, 1), row.last_reply
    # It comes back, and the operator presses "Retry now" within the dead-address memo.
    peer = peers.start("127.0.0.2")
    response = admin_client.post(
        "/admin/delivery/outboundmessage/",
        {"action": "retry_now", "_selected_action": [message.id]},
    )
    assert response.status_code == 302
    run_queue()
    row.refresh_from_db()
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.attempts == 2
    assert [got.rcpt_tos for got in peer.received] == [["bob@remote.test"]]


@pytest.mark.usefixtures("delivery_env")
def test_an_attempt_skipped_by_the_dead_address_memo_is_not_counted(
    make_mailbox, remote_zone, peers
):
    make_mailbox("alice@example.org")
    first = spool(["bob@remote.test"])
    run_queue()  # nothing listens on 127.0.0.2: remembered as unreachable
    second = spool(["carol@remote.test"])
    run_queue()
    row = OutboundRecipient.objects.get(message=second)
    assert row.status == RecipientStatus.DEFERRED
    # The destination backs off after the failure (delivery/destinations.py), before the
    # address memo would skip it.
    assert "delivery paused, backing off after 1 failure(s)" in row.last_reply
    assert row.attempts == 0  # never tried: no attempt counted
    # Due again once the memo has run out, not after a whole step of the retry schedule.
    assert row.next_attempt_at <= timezone.now() + timedelta(seconds=client.UNREACHABLE_MEMO)
    assert OutboundRecipient.objects.get(message=first).attempts == 1


@pytest.mark.usefixtures("delivery_env")
def test_flushqueue_tries_a_peer_that_was_down_moments_ago(make_mailbox, remote_zone, peers):
    from io import StringIO

    from django.core.management import call_command

    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test"])
    run_queue()  # the peer is down: deferred, its address remembered as unreachable
    listing = StringIO()
    call_command("mailq", stdout=listing)
    assert message.queue_id in listing.getvalue()
    assert "bob@remote.test  [deferred, 1 attempt(s)" in listing.getvalue()
    peer = peers.start("127.0.0.2")
    out = StringIO()
    call_command("flushqueue", stdout=out)
    assert out.getvalue().startswith("1 recipient(s) will be tried now.")
    run_queue()
    row = OutboundRecipient.objects.get(message=message)
    assert (row.status, row.attempts) == (RecipientStatus.DELIVERED, 2), row.last_reply
    assert len(peer.received) == 1
    empty = StringIO()
    call_command("mailq", stdout=empty)
    assert empty.getvalue() == "Mail queue is empty\n"

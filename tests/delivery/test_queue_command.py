"""manage.py queue delete|hold|release|bounce on real spool entries, delivered to real SMTP
peers through a real DNS server; a held entry is not attempted by the sweeper or a worker."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from delivery import housekeeping, queue
from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus
from tests.delivery.conftest import run_queue
from tests.delivery.test_delivery import SENDER, inbox_messages, recipient, spool, status_blocks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]


@pytest.fixture
def sender(make_mailbox):
    return make_mailbox(SENDER)


@pytest.fixture
def peer(dns_server, peers):
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.2")
    return peers.start("127.0.0.2")


def queue_command(*args: str, capsys) -> tuple[str, str]:
    call_command("queue", *args)
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_hold_then_release(sender, peer, capsys, caplog):
    caplog.set_level(logging.INFO, logger="delivery")
    message = spool(["bob@remote.test", "carol@remote.test"])
    clear_jobs()  # the job spooling enqueued is lost (as with a flushed Redis): the sweeper's turn
    out, _ = queue_command("hold", message.queue_id.lower(), capsys=capsys)
    assert out == "hold: 2 recipient(s) of 1 queue id(s)\n"
    # Due long ago: only the hold keeps the sweeper and a burst-mode worker off it.
    OutboundRecipient.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))
    assert housekeeping.sweep() == 0
    queue.enqueue(message.pk)  # a job for it all the same (a duplicate, a stale one)
    run_queue()
    assert peer.received == []
    row = recipient(message, "bob@remote.test")
    assert (row.status, row.attempts) == (RecipientStatus.HOLD, 0)
    call_command("mailq")
    assert f"{message.queue_id}!" in capsys.readouterr().out
    call_command("flushqueue")  # Postfix's flush leaves held mail held too
    capsys.readouterr()
    run_queue()
    assert recipient(message, "bob@remote.test").status == RecipientStatus.HOLD

    out, _ = queue_command("release", message.queue_id, capsys=capsys)
    assert out == "release: 2 recipient(s) of 1 queue id(s)\n"
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("queue ")]
    assert logged == [
        f"queue hold queue={message.queue_id}",
        f"queue release queue={message.queue_id}",
    ]
    row = recipient(message, "bob@remote.test")
    assert row.status == RecipientStatus.QUEUED and row.next_attempt_at <= timezone.now()
    housekeeping.sweep()
    run_queue()
    assert [r.status for r in OutboundRecipient.objects.order_by("id")] == [
        RecipientStatus.DELIVERED,
        RecipientStatus.DELIVERED,
    ]
    [got] = peer.received
    assert sorted(got.rcpt_tos) == ["bob@remote.test", "carol@remote.test"]


def test_release_of_a_deferred_entry_keeps_it_deferred(sender, peer, capsys):
    message = spool(["bob@remote.test"])
    clear_jobs()
    OutboundRecipient.objects.update(
        status=RecipientStatus.DEFERRED, attempts=2, next_attempt_at=timezone.now()
    )
    queue_command("hold", message.queue_id, capsys=capsys)
    queue_command("release", message.queue_id, capsys=capsys)
    row = recipient(message, "bob@remote.test")
    assert (row.status, row.attempts) == (RecipientStatus.DEFERRED, 2)


def test_hold_during_an_attempt_survives_its_deferral(sender, dns_server, peers, capsys):
    from delivery import services

    message = spool(["bob@remote.test"])
    clear_jobs()
    claim = services.recipients_claim(message_id=message.pk)
    queue_command("hold", message.queue_id, capsys=capsys)
    services.recipients_record(
        token=claim.token,
        outcomes={
            claim.recipients[0].pk: services.Outcome(RecipientStatus.DEFERRED, "451 4.4.1 x")
        },
    )
    row = recipient(message, "bob@remote.test")
    assert (row.status, row.next_attempt_at, row.last_reply) == (
        RecipientStatus.HOLD,
        None,
        "451 4.4.1 x",
    )


def test_bounce_fails_with_a_dsn(sender, peer, capsys, caplog):
    caplog.set_level(logging.INFO, logger="delivery")
    message = spool(["bob@remote.test"])
    clear_jobs()
    queue_command("hold", message.queue_id, capsys=capsys)  # held entries bounce too
    out, _ = queue_command("bounce", message.queue_id, capsys=capsys)
    assert out == "bounce: 1 recipient(s) of 1 queue id(s)\n"
    row = recipient(message, "bob@remote.test")
    assert row.status == RecipientStatus.FAILED and row.dsn_sent
    [dsn] = inbox_messages(sender)
    [_, block] = status_blocks(dsn)
    assert block["action"] == "failed" and block["status"] == "5.0.0"
    assert any(
        r.getMessage().startswith(f"delivery bounced queue={message.queue_id} to=<bob@remote.test>")
        for r in caplog.records
    )
    run_queue()
    assert peer.received == []


def test_delete_removes_without_dsn(sender, peer, capsys):
    message = spool(["bob@remote.test"])
    other = spool(["carol@remote.test"])
    clear_jobs()
    out, _ = queue_command("delete", message.queue_id, capsys=capsys)
    assert out == "delete: 1 message(s) of 1 queue id(s)\n"
    assert list(OutboundMessage.objects.values_list("pk", flat=True)) == [other.pk]
    assert inbox_messages(sender) == []
    housekeeping.sweep()
    run_queue()
    [got] = peer.received
    assert got.rcpt_tos == ["carol@remote.test"]


def test_unknown_queue_id(sender, capsys):
    message = spool(["bob@remote.test"])
    clear_jobs()
    with pytest.raises(SystemExit) as exit_info:
        call_command("queue", "hold", "NOSUCHID", message.queue_id)
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == "NOSUCHID: no such queue id\n"
    assert captured.out == "hold: 1 recipient(s) of 1 queue id(s)\n"
    assert recipient(message, "bob@remote.test").status == RecipientStatus.HOLD


def clear_jobs() -> None:
    from tests.delivery.conftest import clear_queue

    clear_queue()


def test_held_entry_is_not_pruned(sender, settings, capsys):
    from delivery.services import spool_prune

    settings.MAILHOST_QUEUE_KEEP = 3600
    message = spool(["bob@remote.test"])
    clear_jobs()
    queue_command("hold", message.queue_id, capsys=capsys)
    OutboundMessage.objects.update(created_at=timezone.now() - timedelta(days=30))
    assert spool_prune() == 0
    assert OutboundMessage.objects.filter(pk=message.pk).exists()

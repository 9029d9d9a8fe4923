"""End to end: spool -> queue -> worker -> DNS (a real server) -> SMTP peers on 127.0.0.x."""

from __future__ import annotations

import email
import email.policy
import logging
import re

import dkim
import pytest

from delivery.dkim import dkim_public_key_value, dkim_sign
from delivery.models import OutboundRecipient, RecipientStatus
from delivery.services import SpoolRecipient, spool_create
from mailboxes import selectors
from mailboxes.models import Mailbox, Message
from mailboxes.services import blob_store
from tests.delivery.conftest import HOSTNAME, PeerHandler, deliver_until, run_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

SENDER = "alice@example.org"
RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@remote.test\r\n"
    b"Subject: greetings\r\n"
    b"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\n"
    b"Message-ID: <greetings-1@example.org>\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
    b".leading dot survives\r\n"
)


@pytest.fixture
def sender(make_mailbox):
    return make_mailbox(SENDER)


@pytest.fixture
def zone(dns_server):
    z = dns_server
    z.add("remote.test", "MX", "10 mx1.remote.test.")
    z.add("mx1.remote.test", "A", "127.0.0.2")
    # First MX is silent (nothing listens on 127.0.0.3), the second one takes it.
    z.add("backup.test", "MX", "10 mx1.backup.test.", "20 mx2.backup.test.")
    z.add("mx1.backup.test", "A", "127.0.0.3")
    z.add("mx2.backup.test", "A", "127.0.0.4")
    z.add("nullmx.test", "MX", "0 .")
    z.add("implicit.test", "A", "127.0.0.2")
    z.add("broken.test", "MX", "10 mx1.remote.test.")
    z.servfail.add("broken.test")
    return z


def spool(recipients, *, raw=RAW, mail_from=SENDER, ret="", envid="", sender_mailbox=None):
    blob = blob_store(raw)
    items = [r if isinstance(r, SpoolRecipient) else SpoolRecipient(r) for r in recipients]
    return spool_create(
        blob=blob,
        mail_from=mail_from,
        recipients=items,
        ret=ret,
        envid=envid,
        sender_mailbox=sender_mailbox,
    )


def recipient(message, address) -> OutboundRecipient:
    return OutboundRecipient.objects.get(message=message, address=address)


def inbox_messages(mailbox) -> list[email.message.EmailMessage]:
    folder = selectors.folder_get(mailbox, "INBOX")
    return [
        email.message_from_bytes(selectors.blob_read(m.blob), policy=email.policy.default)
        for m in Message.objects.filter(folder=folder).order_by("uid")
    ]


def status_blocks(dsn) -> list[dict[str, str]]:
    """The message/delivery-status part as a list of field dicts (per-message first)."""
    part = next(p for p in dsn.walk() if p.get_content_type() == "message/delivery-status")
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses the blocks as header sets
        return [{k.lower(): str(v) for k, v in block.items()} for block in payload]
    raise AssertionError("unparsed delivery-status")


def test_delivered_on_first_mx(sender, zone, peers):
    peer = peers.start("127.0.0.2")
    message = spool(["bob@remote.test"])
    run_queue()
    row = recipient(message, "bob@remote.test")
    assert row.status == RecipientStatus.DELIVERED
    assert row.attempts == 1
    assert row.mx_used == "mx1.remote.test"
    assert row.last_reply.startswith("250 2.0.0")
    assert row.lease_token == "" and row.lease_until is None
    [got] = peer.received
    assert got.mail_from == SENDER and got.rcpt_tos == ["bob@remote.test"]
    assert got.data.replace(b"\r\n", b"\n") == RAW.replace(b"\r\n", b"\n")
    assert any(o.startswith("SIZE=") for o in got.mail_options)
    assert ("mx1.remote.test", "MX") not in zone.queries  # MX query is for the domain
    assert ("remote.test", "MX") in zone.queries


def test_first_mx_down_second_takes_it(sender, zone, peers):
    peer = peers.start("127.0.0.4")
    message = spool(["bob@backup.test"])
    run_queue()
    row = recipient(message, "bob@backup.test")
    assert row.status == RecipientStatus.DELIVERED
    assert row.mx_used == "mx2.backup.test"
    assert len(peer.received) == 1


def test_implicit_mx_uses_the_domains_address(sender, zone, peers):
    peer = peers.start("127.0.0.2")
    message = spool(["bob@implicit.test"])
    run_queue()
    assert recipient(message, "bob@implicit.test").status == RecipientStatus.DELIVERED
    assert peer.received[0].rcpt_tos == ["bob@implicit.test"]


def test_one_connection_for_all_recipients_of_a_domain(sender, zone, peers):
    peer = peers.start("127.0.0.2")
    spool(["bob@remote.test", "carol@remote.test", "dave@implicit.test"])
    run_queue()
    assert sorted(len(r.rcpt_tos) for r in peer.received) == [1, 2]


def test_451_twice_then_250_retried_on_the_schedule(sender, zone, peers, settings):
    settings.MAILHOST_RETRY_SCHEDULE = (0, 0.3)
    peer = peers.start(
        "127.0.0.2", PeerHandler(data_replies=["451 4.3.0 try later", "451 4.3.0 still busy"])
    )
    message = spool(["bob@remote.test"])
    run_queue()
    row = recipient(message, "bob@remote.test")
    assert row.status == RecipientStatus.DEFERRED
    assert row.last_reply == "451 4.3.0 try later"
    assert row.next_attempt_at > row.last_attempt_at
    deliver_until(lambda: recipient(message, "bob@remote.test").status == "delivered")
    row = recipient(message, "bob@remote.test")
    assert row.attempts == 3
    assert peer.data_seen == 3
    assert len(peer.received) == 1


def test_550_for_one_of_two_recipients_bounces_to_the_local_sender(sender, zone, peers):
    peer = peers.start(
        "127.0.0.2",
        PeerHandler(rcpt_replies={"carol@remote.test": "550 5.1.1 no such user here"}),
    )
    message = spool(
        ["bob@remote.test", SpoolRecipient("carol@remote.test", orcpt="rfc822;carol@remote.test")],
        envid="ENV-42",
    )
    run_queue()
    assert recipient(message, "bob@remote.test").status == RecipientStatus.DELIVERED
    carol = recipient(message, "carol@remote.test")
    assert carol.status == RecipientStatus.FAILED
    assert carol.last_reply == "550 5.1.1 no such user here"
    assert carol.dsn_sent
    assert peer.received[0].rcpt_tos == ["bob@remote.test"]

    [dsn] = inbox_messages(sender)
    assert dsn["From"].addresses[0].addr_spec == f"MAILER-DAEMON@{HOSTNAME}"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    per_message, *per_recipient = status_blocks(dsn)
    assert per_message["reporting-mta"] == f"dns; {HOSTNAME}"
    assert per_message["original-envelope-id"] == "ENV-42"
    [carol_block] = per_recipient
    assert carol_block["final-recipient"] == "rfc822; carol@remote.test"
    assert carol_block["original-recipient"] == "rfc822; carol@remote.test"
    assert carol_block["action"] == "failed"
    assert carol_block["status"] == "5.1.1"
    assert carol_block["remote-mta"] == "dns; mx1.remote.test"
    assert carol_block["diagnostic-code"] == "smtp; 550 5.1.1 no such user here"
    # RET unset: the headers come back, not the body
    returned = next(p for p in dsn.walk() if p.get_content_type() == "text/rfc822-headers")
    text = returned.get_content()
    assert "Subject: greetings" in text and "Hello Bob" not in text


def test_ret_full_returns_the_whole_message(sender, zone, peers):
    peers.start("127.0.0.2", PeerHandler(rcpt_replies={"bob@remote.test": "550 5.1.1 gone"}))
    spool(["bob@remote.test"], ret="FULL")
    run_queue()
    [dsn] = inbox_messages(sender)
    returned = next(p for p in dsn.walk() if p.get_content_type() == "message/rfc822")
    assert b"Hello Bob." in returned.as_bytes()


def test_null_mx_fails_permanently_with_5_1_10(sender, zone, peers):
    message = spool(["bob@nullmx.test"])
    run_queue()
    row = recipient(message, "bob@nullmx.test")
    assert row.status == RecipientStatus.FAILED
    assert row.last_reply.startswith("556 5.1.10")
    [dsn] = inbox_messages(sender)
    [_, block] = status_blocks(dsn)
    assert block["status"] == "5.1.10" and block["action"] == "failed"


def test_nxdomain_fails_permanently(sender, zone, peers):
    message = spool(["bob@nowhere.test"])
    run_queue()
    row = recipient(message, "bob@nowhere.test")
    assert row.status == RecipientStatus.FAILED
    assert row.last_reply.startswith("550 5.1.2")
    assert "NXDOMAIN" in row.last_reply
    assert len(inbox_messages(sender)) == 1


def test_servfail_defers(sender, zone, peers):
    message = spool(["bob@broken.test"])
    run_queue()
    row = recipient(message, "bob@broken.test")
    assert row.status == RecipientStatus.DEFERRED
    assert row.last_reply.startswith("451 4.4.3")
    assert inbox_messages(sender) == []


def test_expiry_fails_with_4_4_7_and_bounces(sender, zone, peers, settings):
    settings.MAILHOST_RETRY_SCHEDULE = (0, 0.2)
    settings.MAILHOST_QUEUE_LIFETIME = 1
    settings.MAILHOST_DELAY_WARNING = 0
    peer = peers.start("127.0.0.2", PeerHandler(always_data_reply="451 4.3.0 come back later"))
    message = spool(["bob@remote.test"])
    deliver_until(lambda: recipient(message, "bob@remote.test").status == "failed", timeout=15)
    row = recipient(message, "bob@remote.test")
    assert row.last_reply.startswith("4.4.7 delivery time expired")
    assert "451 4.3.0 come back later" in row.last_reply
    assert row.attempts >= 2 and peer.data_seen == row.attempts
    [dsn] = inbox_messages(sender)
    [_, block] = status_blocks(dsn)
    assert block["action"] == "failed" and block["status"] == "4.4.7"


def test_delayed_dsn_once_after_the_warning_time(sender, zone, peers, settings):
    settings.MAILHOST_RETRY_SCHEDULE = (0, 0.2)
    settings.MAILHOST_DELAY_WARNING = 1
    peers.start("127.0.0.2", PeerHandler(always_data_reply="451 4.3.0 come back later"))
    message = spool(["bob@remote.test"])
    deliver_until(lambda: recipient(message, "bob@remote.test").delay_notified, timeout=15)
    deliver_until(lambda: recipient(message, "bob@remote.test").attempts >= 5, timeout=15)
    [dsn] = inbox_messages(sender)
    assert "Delayed" in dsn["Subject"]
    [_, block] = status_blocks(dsn)
    assert block["action"] == "delayed" and block["status"] == "4.3.0"
    assert "will-retry-until" in block


def test_notify_never_and_null_sender_get_no_dsn(sender, zone, peers):
    peers.start("127.0.0.2", PeerHandler(rcpt_replies={"bob@remote.test": "550 5.1.1 gone"}))
    first = spool([SpoolRecipient("bob@remote.test", notify="NEVER")])
    second = spool(["bob@remote.test"], mail_from="")
    run_queue()
    assert recipient(first, "bob@remote.test").status == RecipientStatus.FAILED
    assert recipient(second, "bob@remote.test").status == RecipientStatus.FAILED
    assert inbox_messages(sender) == []
    assert OutboundRecipient.objects.count() == 2  # and nothing spooled for the null sender


def test_dsn_to_a_remote_sender_is_spooled_with_a_null_sender(sender, zone, peers):
    peer = peers.start("127.0.0.2", PeerHandler(rcpt_replies={"bob@remote.test": "550 5.1.1 gone"}))
    spool(["bob@remote.test"], mail_from="zed@implicit.test")
    run_queue()  # the attempt, and the DSN's enqueue-on-commit
    run_queue()  # the DSN's own delivery
    [bounce] = peer.received
    # aiosmtpd reports the null reverse-path as "<>"
    assert bounce.mail_from == "<>" and bounce.rcpt_tos == ["zed@implicit.test"]
    assert b"multipart/report" in bounce.data


def test_local_recipients_never_go_over_the_network(sender, make_mailbox, zone, peers):
    peer = peers.start("127.0.0.2")
    dave = make_mailbox("dave@example.org")
    message = spool(["dave@example.org", "bob@remote.test", "nobody@example.org"])
    run_queue()
    assert recipient(message, "dave@example.org").status == RecipientStatus.DELIVERED
    assert recipient(message, "nobody@example.org").status == RecipientStatus.FAILED
    assert [r.rcpt_tos for r in peer.received] == [["bob@remote.test"]]
    [copy] = inbox_messages(dave)
    assert copy["Subject"] == "greetings"
    [dsn] = inbox_messages(sender)  # for nobody@example.org
    [_, block] = status_blocks(dsn)
    assert block["final-recipient"] == "rfc822; nobody@example.org"
    assert block["status"] == "5.1.1"


def test_a_local_recipient_at_its_message_limit_is_deferred_as_a_full_mailbox(
    sender, make_mailbox, zone, peers
):
    dave = make_mailbox("dave@example.org")
    Mailbox.objects.filter(pk=dave.pk).update(quota_messages=1)
    message = spool(["dave@example.org"])
    run_queue()
    assert recipient(message, "dave@example.org").status == RecipientStatus.DELIVERED
    message = spool(["dave@example.org"])
    run_queue()
    row = recipient(message, "dave@example.org")
    # as a full mailbox by octets: try again later, no bounce yet
    assert (row.status, row.last_reply) == (RecipientStatus.DEFERRED, "452 4.2.2 mailbox full")
    assert len(inbox_messages(dave)) == 1 and not inbox_messages(sender)


def test_outbound_mail_carries_a_dkim_signature_that_verifies(sender, zone, peers):
    peer = peers.start("127.0.0.2")
    domain = sender.domain
    zone.add_txt(f"{domain.dkim_selector}._domainkey.{domain.name}", dkim_public_key_value(domain))
    spool(["bob@remote.test"], raw=dkim_sign(RAW, mail_from=SENDER))
    run_queue()
    [got] = peer.received
    assert got.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(got.data, dnsfunc=zone.txt_lookup)
    assert not dkim.verify(got.data.replace(b"Hello Bob", b"Hello Eve"), dnsfunc=zone.txt_lookup)


def test_job_run_twice_delivers_once(sender, zone, peers):
    from delivery.jobs import deliver_message

    peer = peers.start("127.0.0.2")
    message = spool(["bob@remote.test"])
    deliver_message(message.id)
    deliver_message(message.id)
    run_queue()
    assert len(peer.received) == 1
    assert recipient(message, "bob@remote.test").attempts == 1


def test_notify_success_gets_delivered_and_relayed_reports(sender, make_mailbox, zone, peers):
    peers.start("127.0.0.2")  # aiosmtpd offers no DSN: we report "relayed"
    make_mailbox("dave@example.org")
    message = spool(
        [
            SpoolRecipient("dave@example.org", notify="SUCCESS"),
            SpoolRecipient("bob@remote.test", notify="SUCCESS,FAILURE"),
            SpoolRecipient("carol@remote.test"),  # default: no success report
        ]
    )
    run_queue()
    assert set(
        OutboundRecipient.objects.filter(message=message).values_list("status", flat=True)
    ) == {"delivered"}
    dsns = inbox_messages(sender)
    assert sorted(d["Subject"] for d in dsns) == ["Successful Mail Delivery Report"] * 2
    blocks = sorted((status_blocks(d)[1] for d in dsns), key=lambda b: b["action"])
    assert [(b["action"], b["final-recipient"], b["status"]) for b in blocks] == [
        ("delivered", "rfc822; dave@example.org", "2.0.0"),
        ("relayed", "rfc822; bob@remote.test", "2.0.0"),
    ]
    assert blocks[1]["remote-mta"] == "dns; mx1.remote.test"


def test_mx_whose_aaaa_lookup_is_refused_gets_the_mail_on_its_a_address(sender, dns_server, peers):
    dns_server.add("v4only.test", "MX", "10 mx.v4only.test.")
    dns_server.add("mx.v4only.test", "A", "127.0.0.2")
    dns_server.refused.add(("mx.v4only.test", "AAAA"))
    peer = peers.start("127.0.0.2")
    message = spool(["bob@v4only.test"])
    run_queue()
    row = recipient(message, "bob@v4only.test")
    assert (row.status, row.mx_used) == (RecipientStatus.DELIVERED, "mx.v4only.test"), (
        row.last_reply
    )
    assert [got.rcpt_tos for got in peer.received] == [["bob@v4only.test"]]


# --- the log a mail admin reads: one line per recipient outcome -----------------------------

RESULT_LINE = re.compile(
    r"^delivery (?P<event>\w+) queue=(?P<queue>\S+) to=<(?P<to>[^>]*)> mx=(?P<mx>\S+)"
    r' delay=(?P<delay>\d+\.\d)s reply="(?P<reply>[^"]*)"$'
)


def result_lines(caplog) -> list[dict[str, str]]:
    found = []
    for record in caplog.records:
        if record.name == "delivery.services" and record.getMessage().startswith("delivery "):
            match = RESULT_LINE.match(record.getMessage())
            assert match, record.getMessage()
            found.append(match.groupdict())
    return found


def test_log_delivered_and_bounced_one_line_per_recipient(sender, zone, peers, caplog):
    caplog.set_level(logging.INFO, logger="delivery")
    peers.start("127.0.0.2", PeerHandler(rcpt_replies={"carol@remote.test": "550 5.1.1 gone"}))
    message = spool(["bob@remote.test", "carol@remote.test"])
    run_queue()
    lines = sorted(result_lines(caplog), key=lambda line: line["to"])
    assert [(x["event"], x["to"], x["mx"], x["reply"]) for x in lines] == [
        ("delivered", "bob@remote.test", "mx1.remote.test[127.0.0.2]", "250 2.0.0 queued as TEST"),
        ("bounced", "carol@remote.test", "mx1.remote.test[127.0.0.2]", "550 5.1.1 gone"),
    ]
    # The queue id is the spool's (the one acceptance logged), the delay counts from it.
    assert {x["queue"] for x in lines} == {message.queue_id}
    assert all(0 <= float(x["delay"]) < 30 for x in lines)


def test_log_deferred_with_the_peers_4xx(sender, zone, peers, caplog):
    caplog.set_level(logging.INFO, logger="delivery")
    peers.start("127.0.0.2", PeerHandler(always_data_reply="451 4.3.0 come back later"))
    message = spool(["bob@remote.test"])
    run_queue()
    [line] = result_lines(caplog)
    assert line == {
        "event": "deferred",
        "queue": message.queue_id,
        "to": "bob@remote.test",
        "mx": "mx1.remote.test[127.0.0.2]",
        "delay": line["delay"],
        "reply": "451 4.3.0 come back later",
    }


def test_log_dns_failure_and_expiry(sender, zone, peers, settings, caplog):
    caplog.set_level(logging.INFO, logger="delivery")
    settings.MAILHOST_RETRY_SCHEDULE = (0, 0.2)
    settings.MAILHOST_QUEUE_LIFETIME = 1
    settings.MAILHOST_DELAY_WARNING = 0
    message = spool(["bob@broken.test"])
    deliver_until(lambda: recipient(message, "bob@broken.test").status == "failed", timeout=15)
    lines = result_lines(caplog)
    assert {x["event"] for x in lines[:-1]} == {"deferred"}
    assert lines[-1]["event"] == "expired" and lines[-1]["mx"] == "none"
    assert lines[-1]["reply"].startswith("4.4.7 delivery time expired")
    assert float(lines[-1]["delay"]) >= 1.0


# --- long lines on the way out (Postfix's smtp_line_length_limit) ------------------------------

LONG_SUBJECT = b"Subject: " + b" ".join(b"word%03d" % i for i in range(150)) + b"\r\n"


def test_long_lines_reach_a_strict_peer_broken_as_postfix_does(sender, zone, peers):
    # aiosmtpd, like many servers, refuses a DATA line over 1000 octets with CRLF.
    peer = peers.start("127.0.0.2")
    raw = RAW.replace(b"Subject: greetings\r\n", LONG_SUBJECT) + b"z" * 5000 + b"\r\n"
    message = spool(["bob@remote.test"], raw=raw)
    run_queue()
    row = recipient(message, "bob@remote.test")
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    [got] = peer.received
    assert max(len(line) for line in got.data.split(b"\r\n")) == 998
    assert b"\r\n" + b"z" * 998 + b"\r\n " + b"z" * 997 + b"\r\n " in got.data
    # The header was folded, not cut: parsed, it is the same Subject.
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    assert parsed["Subject"] == LONG_SUBJECT[9:-2].decode()


def test_dkim_survives_a_folded_long_header_and_not_a_broken_body_line(sender, zone, peers):
    peer = peers.start("127.0.0.2")
    domain = sender.domain
    zone.add_txt(f"{domain.dkim_selector}._domainkey.{domain.name}", dkim_public_key_value(domain))
    long_header = RAW.replace(b"Subject: greetings\r\n", LONG_SUBJECT)
    spool(["bob@remote.test"], raw=dkim_sign(long_header, mail_from=SENDER))
    run_queue()
    [got] = peer.received
    assert max(len(line) for line in got.data.split(b"\r\n")) <= 998
    # Folded at white space: relaxed header canonicalization sees the same field.
    assert dkim.verify(got.data, dnsfunc=zone.txt_lookup)
    # A body line over the limit gets CRLF SPACE, which no DKIM canonicalization undoes:
    # the signature breaks, as it does behind Postfix (README, "Outbound delivery").
    spool(["bob@remote.test"], raw=dkim_sign(RAW + b"z" * 1200 + b"\r\n", mail_from=SENDER))
    run_queue()
    assert not dkim.verify(peer.received[1].data, dnsfunc=zone.txt_lookup)

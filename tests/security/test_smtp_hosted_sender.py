"""Mail from the world that claims a hosted domain as its sender (issue 14).

On port 25 without AUTH, MAIL FROM in a domain hosted here is refused (550 5.7.1) unless the
client is in MAILHOST_SMTP_HOSTED_SENDER_CLIENTS; what that list lets through is marked with
an X-Mailhost-Unauthenticated-Hosted-Sender header. The null sender is never refused.
"""

from __future__ import annotations

import ipaddress
import logging
import smtplib

import pytest

from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailhost import runner
from protocols.smtp import replies
from tests.support.servers import running

pytestmark = pytest.mark.django_db(transaction=True)

BODY = b"From: someone\r\nSubject: hi\r\n\r\nhello\r\n"
MARK = b"X-Mailhost-Unauthenticated-Hosted-Sender: "


def send(port: int, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
        client.sendmail(sender, ["alice@example.org"], BODY)


def inbox() -> list[bytes]:
    return [blob_read(m.blob) for m in Message.objects.order_by("id")]


@pytest.mark.parametrize(
    "sender", ["bob@example.org", "BOB@Example.ORG", "nobody@example.org", "alice@example.org"]
)
def test_hosted_sender_without_auth_is_refused(smtp_ports, hosted, sender, caplog):
    caplog.set_level(logging.INFO, logger="mailhost.smtp")
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        send(smtp_ports["smtp"], sender)
    reply = replies.S550_HOSTED_SENDER_UNAUTHENTICATED
    assert (refused.value.smtp_code, refused.value.smtp_error.decode()) == (
        reply.code,
        f"{reply.status} {reply.text}",
    )
    assert inbox() == []
    assert any(
        r.getMessage().startswith("smtp reject client=127.0.0.1 service=smtp ")
        and f"from=<{sender}>" in r.getMessage()
        and r.getMessage().endswith(f'reply="{reply}"')
        for r in caplog.records
    )


def test_null_sender_and_other_domains_pass_unmarked(smtp_ports, hosted):
    send(smtp_ports["smtp"], "")
    send(smtp_ports["smtp"], "x@remote.example")
    assert len(inbox()) == 2
    assert all(MARK not in raw for raw in inbox())


def test_listed_clients_pass_and_are_marked(live_settings, transactional_db, hosted):
    live_settings.MAILHOST_SMTP_HOSTED_SENDER_CLIENTS = (
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("127.0.0.1/32"),
    )
    with running(runner.SMTP) as ports:
        send(ports["smtp"], "bob@example.org")
    (raw,) = inbox()
    assert MARK + b"<bob@example.org> from 127.0.0.1\r\n" + BODY in raw
    assert raw.startswith(b"Received: ")


def test_authenticated_submission_is_not_marked(smtp_ports, hosted):
    from tests.support.smtp import client_tls_context

    with smtplib.SMTP("127.0.0.1", smtp_ports["submission"], timeout=15) as client:
        client.starttls(context=client_tls_context())
        client.login("bob@example.org", "secret")
        client.sendmail(
            "bob@example.org", ["alice@example.org"], BODY.replace(b"someone", b"bob@example.org")
        )
    (raw,) = inbox()
    assert MARK not in raw

"""SMTP's log lines for the mail admin (issue 13): one line per rejection, naming the client,
and one acceptance line with the queue id that delivery's lines carry on."""

from __future__ import annotations

import logging

import pytest

from delivery.models import OutboundMessage
from protocols.smtp import replies
from tests.protocols.smtp.test_submission import tls_login
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT = "client=127.0.0.1 service=smtp helo=client.example.net"


@pytest.fixture
def log_lines(caplog):
    caplog.set_level(logging.INFO, logger="mailhost.smtp")

    def lines(event: str) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "mailhost.smtp" and r.getMessage().startswith(event)
        ]

    return lines


def test_every_rejection_on_port_25_is_one_line_with_the_client(smtp_ports, hosted, log_lines):
    mta = Transcript(smtp_ports["smtp"])
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<nobody@example.org>", replies.S550_NO_SUCH_USER)
    mta.command("RCPT TO:<victim@elsewhere.example>", replies.S554_RELAY_DENIED)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(b"Subject: nul\r\n\r\na\x00b\r\n.\r\n")
    mta.expect(replies.S550_NUL_IN_MESSAGE)
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<alice@example.org>", replies.S250_RECIPIENT_OK)
    mta.command("DATA", replies.S354_START_DATA)
    mta.send(b"Subject: fine\r\n\r\nhello\r\n.\r\n")
    queue_id = mta.line().rsplit(" ", 1)[1]
    mta.command("QUIT", replies.S221_BYE)
    mta.close()
    assert log_lines("smtp reject") == [
        f"smtp reject {CLIENT} from=<x@remote.example> to=<nobody@example.org> "
        f'reply="{replies.S550_NO_SUCH_USER}"',
        f"smtp reject {CLIENT} from=<x@remote.example> to=<victim@elsewhere.example> "
        f'reply="{replies.S554_RELAY_DENIED}"',
        f'smtp reject {CLIENT} from=<x@remote.example> rcpts=1 reply="{replies.S550_NUL_IN_MESSAGE}"',
    ]
    assert log_lines("smtp accepted") == [
        f"smtp accepted {CLIENT} from=<x@remote.example> queue={queue_id} rcpts=1 size=24 tls=no"
    ]


def test_the_lines_name_the_helo_given_last_on_the_connection(smtp_ports, hosted, log_lines):
    # The lines' client part is kept between them: a new EHLO name must show in the next one.
    mta = Transcript(smtp_ports["smtp"])
    mta.ehlo()
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<nobody@example.org>", replies.S550_NO_SUCH_USER)
    mta.ehlo("other.example.net")
    mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)
    mta.command("RCPT TO:<nobody@example.org>", replies.S550_NO_SUCH_USER)
    mta.command("HELO", replies.S501_HELO_SYNTAX.format("HELO"))
    mta.command("QUIT", replies.S221_BYE)
    mta.close()
    other = "client=127.0.0.1 service=smtp helo=other.example.net"
    assert log_lines("smtp reject") == [
        f"smtp reject {CLIENT} from=<x@remote.example> to=<nobody@example.org> "
        f'reply="{replies.S550_NO_SUCH_USER}"',
        f"smtp reject {other} from=<x@remote.example> to=<nobody@example.org> "
        f'reply="{replies.S550_NO_SUCH_USER}"',
        f"smtp reject {other} from=<x@remote.example> "
        f'reply="{replies.S501_HELO_SYNTAX.format("HELO")}"',
    ]


def test_submission_rejections_and_the_queue_id_delivery_carries(smtp_ports, hosted, log_lines):
    msa = Transcript(smtp_ports["submission"])
    msa.ehlo()
    msa.command("STARTTLS", replies.S220_READY_TLS)
    msa.starttls()
    msa.ehlo()
    msa.command("MAIL FROM:<alice@example.org>", replies.S530_AUTH_REQUIRED)
    msa.close()
    msa = Transcript(smtp_ports["submission"])
    tls_login(msa)
    msa.command("MAIL FROM:<bob@example.org>", replies.S553_SENDER_NOT_OWNED)
    msa.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    msa.command("RCPT TO:<someone@remote.example>", replies.S250_RECIPIENT_OK)
    msa.command("DATA", replies.S354_START_DATA)
    msa.send(b"From: alice@example.org\r\nSubject: out\r\n\r\nhello\r\n.\r\n")
    queue_id = msa.line().rsplit(" ", 1)[1]
    msa.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    msa.command("RCPT TO:<someone@remote.example>", replies.S250_RECIPIENT_OK)
    msa.command("DATA", replies.S354_START_DATA)
    msa.send(b"From: <bob@example.org>\r\nSubject: spoof\r\n\r\nhello\r\n.\r\n")
    msa.expect(replies.S553_FROM_NOT_OWNED)
    msa.close()
    submission = "client=127.0.0.1 service=submission helo=client.example.net"
    assert log_lines("smtp reject") == [
        f'smtp reject {submission} reply="{replies.S530_AUTH_REQUIRED}"',
        f"smtp reject {submission} auth=alice@example.org from=<bob@example.org> "
        f'reply="{replies.S553_SENDER_NOT_OWNED}"',
        f"smtp reject {submission} auth=alice@example.org from=<alice@example.org> rcpts=1 "
        f'reply="{replies.S553_FROM_NOT_OWNED}"',
    ]
    (accepted,) = log_lines("smtp accepted")
    assert accepted.startswith(
        f"smtp accepted {submission} auth=alice@example.org from=<alice@example.org> "
        f"queue={queue_id} rcpts=1 size="
    )
    assert accepted.endswith(" tls=yes")
    assert OutboundMessage.objects.get().queue_id == queue_id  # the id delivery logs

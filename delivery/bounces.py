"""Delivery status notifications (RFC 3464, RFC 3461): failure and delay reports.

One DSN per message per event covers every recipient it concerns. It comes from
MAILER-DAEMON with the null reverse-path, so that it can never bounce in turn, and goes to
the original envelope sender: filed straight into the mailbox when the sender is local,
spooled like any outbound message otherwise. No DSN ever goes to a null sender, and a
recipient with NOTIFY=NEVER gets none (RFC 3461 4.1).
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

# RFC 3464 2.3.3 Action values
FAILED = "failed"
DELAYED = "delayed"
DELIVERED = "delivered"
RELAYED = "relayed"


@dataclass(frozen=True)
class ReportedRecipient:
    address: str
    orcpt: str
    status: str  # enhanced status code, e.g. 5.1.1
    reply: str  # the last reply, "550 5.1.1 ..."
    remote_mta: str  # the host that gave the reply, "" for our own verdicts
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None


def notify_wants(notify: str, event: str) -> bool:
    """Does a recipient's NOTIFY ask for this event? ("" is the default: FAILURE,DELAY)."""
    values = {v.strip().upper() for v in notify.split(",") if v.strip()}
    if not values:
        values = {"FAILURE", "DELAY"}
    if "NEVER" in values:
        return False
    wanted = {FAILED: "FAILURE", DELAYED: "DELAY", DELIVERED: "SUCCESS", RELAYED: "SUCCESS"}
    return wanted[event] in values


def _header_block(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end >= 0:
            return raw[: end + len(sep)]
    return raw


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _rfc822_date(when: datetime | None) -> str:
    return email.utils.format_datetime(when or timezone.now())


def _orcpt_field(orcpt: str, address: str) -> str | None:
    if not orcpt:
        return None
    addr_type, sep, value = orcpt.partition(";")
    if not sep:
        return f"rfc822; {orcpt}"
    return f"{addr_type.strip()}; {value.strip()}"


def _final_recipient(address: str) -> str:
    # RFC 6533 3: a non-ASCII address is typed utf-8
    return f"{'rfc822' if address.isascii() else 'utf-8'}; {address}"


def build_dsn(
    *,
    event: str,
    original: bytes,
    mail_from: str,
    queue_id: str,
    envid: str,
    ret: str,
    arrival: datetime,
    recipients: Sequence[ReportedRecipient],
) -> bytes:
    """The DSN message as bytes (CRLF), ready to file or spool."""
    hostname = settings.MAILHOST_HOSTNAME
    boundary = f"{queue_id}.{int(timezone.now().timestamp())}/{hostname}"
    postmaster = f"MAILER-DAEMON@{hostname}"
    if event == FAILED:
        subject = "Undelivered Mail Returned to Sender"
        intro = (
            "This is the mail system at host {host}.\n\n"
            "Your message could not be delivered to one or more recipients.\n"
            "The errors are listed below; the message (or its header) is attached.\n"
        )
    elif event in (DELIVERED, RELAYED):
        subject = "Successful Mail Delivery Report"
        intro = "This is the mail system at host {host}.\n\n" + (
            "Your message was delivered to the mailboxes listed below.\n"
            if event == DELIVERED
            else "Your message was handed to the systems listed below, which do not send\n"
            "delivery notifications: no further report will come from them.\n"
        )
    else:
        subject = "Delayed Mail (still being retried)"
        intro = (
            "This is the mail system at host {host}.\n\n"
            "Your message has not been delivered to one or more recipients yet.\n"
            "Delivery is still being attempted; you do not need to send it again.\n"
        )
    lines = [intro.format(host=hostname), ""]
    for r in recipients:
        lines.append(
            f"<{r.address}>: {r.reply}" + (f" (from {r.remote_mta})" if r.remote_mta else "")
        )
    text_part = "\n".join(lines) + "\n"

    # RFC 3464 2.2: per-message fields
    status_lines = [f"Reporting-MTA: dns; {hostname}"]
    if envid:
        status_lines.append(f"Original-Envelope-Id: {envid}")
    status_lines.append(f"X-Mailhost-Queue-ID: {queue_id}")
    status_lines.append(f"Arrival-Date: {_rfc822_date(arrival)}")
    status_blocks = ["\n".join(status_lines)]
    # RFC 3464 2.3: per-recipient fields
    for r in recipients:
        block = []
        orcpt = _orcpt_field(r.orcpt, r.address)
        if orcpt:
            block.append(f"Original-Recipient: {orcpt}")
        block.append(f"Final-Recipient: {_final_recipient(r.address)}")
        block.append(f"Action: {event}")
        block.append(f"Status: {r.status}")
        if r.remote_mta:
            block.append(f"Remote-MTA: dns; {r.remote_mta}")
            block.append(f"Diagnostic-Code: smtp; {r.reply}")
        else:
            block.append(f"Diagnostic-Code: X-Mailhost; {r.reply}")
        if r.last_attempt:
            block.append(f"Last-Attempt-Date: {_rfc822_date(r.last_attempt)}")
        if event == DELAYED and r.will_retry_until:
            block.append(f"Will-Retry-Until: {_rfc822_date(r.will_retry_until)}")
        status_blocks.append("\n".join(block))
    status_part = "\n\n".join(status_blocks) + "\n"

    full = ret.upper() == "FULL" and event == FAILED
    if full:
        returned_type = "message/rfc822"
        returned = _crlf(original)
    else:
        returned_type = "text/rfc822-headers"
        returned = _crlf(_header_block(original)).rstrip(b"\r\n") + b"\r\n"
    non_ascii = not returned.isascii()
    if non_ascii and returned_type == "message/rfc822":
        returned_type = "message/global"  # RFC 6532 3.7
    elif non_ascii:
        returned_type = "message/global-headers"

    head = (
        f"From: Mail Delivery System <{postmaster}>\n"
        f"To: {mail_from}\n"
        f"Subject: {subject}\n"
        f"Date: {_rfc822_date(None)}\n"
        f"Message-ID: {email.utils.make_msgid(domain=hostname)}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n boundary="{boundary}"\n'
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        f"{text_part}\n"
        f"--{boundary}\n"
        "Content-Description: Delivery report\n"
        f"Content-Type: message/{'global-delivery-status' if non_ascii else 'delivery-status'}\n"
        "\n"
        f"{status_part}\n"
        f"--{boundary}\n"
        f"Content-Description: {'Undelivered message' if full else 'Message headers'}\n"
        f"Content-Type: {returned_type}\n"
        + ("Content-Transfer-Encoding: 8bit\n" if not returned.isascii() else "")
        + "\n"
    )
    tail = f"\n--{boundary}--\n"
    return _crlf(head.encode("utf-8")) + returned + _crlf(tail.encode("utf-8"))

"""Messages a Sieve script sends on its own: vacation replies (RFC 5230, RFC 6131), reject
notices (RFC 5429: an MDN per RFC 3798), and notifications by mail (RFC 5436).

Each is built here as bytes; the MDA (mailboxes/mda.py) decides whether to send and spools
it. Every one carries Auto-Submitted (RFC 3834 5) and leaves with the null envelope sender, so
that no auto-reply ever answers another.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from collections.abc import Iterable
from email.header import Header
from email.parser import BytesHeaderParser
from email.policy import compat32

from django.conf import settings
from django.utils import timezone

from mailboxes import headers

# RFC 5230 4.6 / RFC 3834 2: senders that are mail systems or lists, never answered.
_SYSTEM_SENDER = re.compile(
    r"^(mailer-daemon|postmaster|listserv|majordomo|mailman|nobody|noreply|no-reply|"
    r"do-not-reply|donotreply|bounce|bounces)$|^owner-|-request$|-owner$|-bounces?$",
    re.I,
)
# RFC 2369 / RFC 2919 list fields, and the bulk fields lists and mass mailers add.
_LIST_FIELDS = (
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "x-list-id",
    "mailing-list",
    "x-mailing-list",
)


def _parsed(raw: bytes):  # noqa: ANN202 - a compat32 Message
    return BytesHeaderParser(policy=compat32).parsebytes(headers.header_block(raw))


def _text(value) -> str:  # noqa: ANN001
    return headers.header_text(value) if value is not None else ""


def _addresses(parsed, *names: str) -> list[str]:  # noqa: ANN001
    values = [_text(v) for name in names for v in (parsed.get_all(name) or [])]
    try:
        return [a.lower() for _, a in email.utils.getaddresses(values) if a]
    except (ValueError, IndexError, RecursionError):
        return []


def vacation_refusal(raw: bytes, *, mail_from: str, user_addresses: Iterable[str]) -> str:
    """Why a vacation reply must not go to this message ("" when it may): RFC 5230 4.5, 4.6
    and RFC 3834 2."""
    sender = (mail_from or "").strip("<>")
    if not sender:
        return "null sender"
    if _SYSTEM_SENDER.search(sender.rpartition("@")[0]):
        return "sender is a mail system or list address"
    mine = {a.lower() for a in user_addresses if a}
    if sender.lower() in mine:
        return "sender is the user"
    parsed = _parsed(raw)
    auto = _text(parsed.get("Auto-Submitted")).strip().lower()
    if auto and not auto.startswith("no"):
        return "Auto-Submitted"
    precedence = _text(parsed.get("Precedence")).strip().lower()
    if precedence in {"bulk", "junk", "list"}:
        return f"Precedence: {precedence}"
    for name in _LIST_FIELDS:
        if parsed.get(name) is not None:
            return f"list message ({name})"
    for name in ("X-Auto-Response-Suppress",):
        value = _text(parsed.get(name)).lower()
        if "oof" in value or "all" in value:
            return name
    shown = _addresses(parsed, "To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
    if not mine.intersection(shown):
        return "no address of the user in To/Cc"
    return ""


def auto_submitted(raw: bytes) -> bool:
    """RFC 3834 5: the message says it was sent by a machine."""
    auto = _text(_parsed(raw).get("Auto-Submitted")).strip().lower()
    return bool(auto) and not auto.startswith("no")


def vacation_handle(*, handle: str, subject: str, from_: str, reason: str, mime: bool) -> str:
    """RFC 5230 4.2: without :handle, replies differ by their content."""
    if handle:
        return handle[:64]
    text = "\0".join([subject, from_, reason, "mime" if mime else ""])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _header(name: str, value: str) -> str:
    # A value comes from the script and, through variables, from the incoming message (an
    # encoded word can carry CR LF): line breaks would start header fields of the sender's
    # choosing in a reply signed with our key, so each run of control characters is a space.
    value = " ".join(_CONTROL.split(value)).strip()
    if value.isascii():
        return f"{name}: {value}"
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode()}"


def _reply_ids(parsed) -> tuple[str, str]:  # noqa: ANN001
    """In-Reply-To and References of a reply (RFC 5322 3.6.4)."""
    message_id = _text(parsed.get("Message-ID")).strip()
    references = " ".join(_text(parsed.get("References")).split())
    if not message_id:
        return "", references
    return message_id, f"{references} {message_id}".strip()


def vacation_reply(
    original: bytes,
    *,
    from_address: str,
    to: str,
    subject: str,
    reason: str,
    mime: bool,
) -> bytes:
    """The vacation reply (RFC 5230 5): to the envelope sender, Auto-Submitted: auto-replied,
    In-Reply-To/References, "Auto: <subject>" unless :subject says otherwise."""
    parsed = _parsed(original)
    if not subject:
        original_subject = _text(parsed.get("Subject")).strip()
        subject = f"Auto: {original_subject}" if original_subject else "Auto: (no subject)"
    in_reply_to, references = _reply_ids(parsed)
    lines = [
        _header("From", from_address),
        f"To: <{to}>",
        _header("Subject", subject),
        f"Date: {email.utils.format_datetime(timezone.now())}",
        f"Message-ID: {email.utils.make_msgid(domain=settings.MAILHOST_HOSTNAME)}",
        "Auto-Submitted: auto-replied (vacation)",
        "Precedence: bulk",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {references}"]
    if mime:
        # RFC 5230 4.4: with :mime the reason is a MIME entity of its own (headers + body).
        lines.append("MIME-Version: 1.0")
        body = reason.replace("\r\n", "\n")
        head = "\r\n".join(lines) + "\r\n"
        return (head + body.replace("\n", "\r\n")).encode("utf-8")
    lines += [
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit"
        if not reason.isascii()
        else "Content-Transfer-Encoding: 7bit",
    ]
    body = reason.replace("\r\n", "\n").replace("\n", "\r\n")
    if not body.endswith("\r\n"):
        body += "\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def reject_mdn(original: bytes, *, mail_from: str, recipient: str, reason: str) -> bytes:
    """RFC 5429 2.1 / 6: the notice that a message was refused by the recipient's script, as
    an MDN (RFC 3798): Disposition automatic-action/MDN-sent-automatically; deleted, with the
    script's reason as the human-readable part and the original header attached."""
    hostname = settings.MAILHOST_HOSTNAME
    parsed = _parsed(original)
    original_subject = _text(parsed.get("Subject")).strip()
    message_id = _text(parsed.get("Message-ID")).strip()
    boundary = f"{hashlib.sha256(original[:4096]).hexdigest()[:16]}/{hostname}"
    text = reason.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    status = [
        f"Reporting-UA: {hostname}; Mailhost Sieve",
        f"Final-Recipient: rfc822; {recipient}",
    ]
    if message_id:
        status.append(f"Original-Message-ID: {message_id}")
    status.append("Disposition: automatic-action/MDN-sent-automatically; deleted")
    returned = headers.header_block(original).rstrip(b"\r\n")
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{mail_from}>",
        _header("Subject", f"Rejected: {original_subject}" if original_subject else "Rejected"),
        f"Date: {email.utils.format_datetime(timezone.now())}",
        f"Message-ID: {email.utils.make_msgid(domain=hostname)}",
        "Auto-Submitted: auto-replied (rejected)",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=disposition-notification;\n boundary="{boundary}"',
    ]
    if message_id:
        head.append(f"In-Reply-To: {message_id}")
    body = (
        "\n".join(head)
        + "\n\nThis is a MIME-encapsulated message.\n\n"
        + f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n"
        + "Content-Transfer-Encoding: 8bit\n\n"
        + f"Your message to <{recipient}> was rejected by the recipient's filter:\n\n{text}\n"
        + f"--{boundary}\nContent-Type: message/disposition-notification\n\n"
        + "\n".join(status)
        + f"\n\n--{boundary}\nContent-Type: "
        + ("text/rfc822-headers" if returned.isascii() else "message/global-headers")
        + "\n\n"
    )
    tail = f"\n\n--{boundary}--\n"
    return _crlf(body.encode("utf-8")) + _crlf(returned) + _crlf(tail.encode("utf-8"))


def notify_message(
    original: bytes, *, from_address: str, to: str, subject: str, message: str, importance: str
) -> bytes:
    """RFC 5436 2.7: a notification by mail: Auto-Submitted: auto-notified, the original's
    subject and sender in the default text."""
    parsed = _parsed(original)
    original_from = _text(parsed.get("From")).strip()
    original_subject = _text(parsed.get("Subject")).strip()
    summary = message or f"New mail from {original_from}: {original_subject}"
    lines = [
        _header("From", from_address),
        f"To: <{to}>",
        _header("Subject", subject or summary[:200]),
        f"Date: {email.utils.format_datetime(timezone.now())}",
        f"Message-ID: {email.utils.make_msgid(domain=settings.MAILHOST_HOSTNAME)}",
        "Auto-Submitted: auto-notified",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    if importance in {"1", "3"}:
        lines.append(f"Importance: {'high' if importance == '1' else 'low'}")
    return ("\r\n".join(lines) + "\r\n\r\n" + summary + "\r\n").encode("utf-8")


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")

"""Composing: address lists, reply and forward prefill, and the MIME message itself."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from typing import TYPE_CHECKING

from django.utils import timezone

from mailboxes.addresses import parse_address
from mailboxes.exceptions import InvalidAddress
from webmail import htmltext, mime

if TYPE_CHECKING:
    from mailboxes.models import Mailbox, Message


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Draft:
    """What the compose form holds."""

    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str = ""
    references: str = ""
    attachments: list[Upload] = field(default_factory=list)
    # The identity written as (an address the mailbox owns) and its display name; empty:
    # the mailbox's own address and name.
    from_address: str = ""
    from_name: str = ""
    # Rich text: the HTML the editor made (sanitized when built); body is then its text.
    html: str = ""


# Room a message needs besides its attachments' encoded octets: header fields, the text,
# each part's MIME header lines.
MESSAGE_OVERHEAD = 16 * 1024


def encoded_size(size: int) -> int:
    """Octets that `size` octets of attachment take base64-encoded (RFC 2045 6.8: 4
    characters per 3 octets, in lines of 76 characters and CRLF): about 1.37 times."""
    characters = 4 * ((size + 2) // 3)
    return characters + 2 * ((characters + 75) // 76)


def attachment_limit(max_message_size: int) -> int:
    """The attachment octets, in all, that fit in a message of max_message_size once encoded
    (57 octets become a 78-octet line)."""
    return max(0, max_message_size - MESSAGE_OVERHEAD) // 78 * 57


def split_addresses(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Parse a To/Cc/Bcc field. Returns ((name, address) pairs, invalid entries)."""
    valid: list[tuple[str, str]] = []
    invalid: list[str] = []
    # getaddresses understands quoted names with commas; a lone word with no @ is invalid.
    chunks = _address_chunks(text or "")
    for chunk in chunks:
        if not chunk:
            continue
        pairs = getaddresses([chunk])
        if len(pairs) != 1 or not pairs[0][1]:
            invalid.append(chunk)
            continue
        name, address = pairs[0]
        # getaddresses quietly repairs some input ("a@exa mple.org" -> "a@example.org"):
        # send only to what was typed.
        if address not in chunk:
            invalid.append(chunk)
            continue
        try:
            parsed = parse_address(address)
        except InvalidAddress:
            invalid.append(chunk)
            continue
        if "." not in parsed.domain:
            invalid.append(chunk)
            continue
        valid.append((name, f"{parsed.local_part}@{address.rpartition('@')[2]}"))
    return valid, invalid


# A quoted string (an unterminated one runs to the end), a run of anything else, a separator.
_ADDRESS_PIECE = re.compile(r'"(?:[^"\\]|\\.)*+"?|[^",;\n]++|[,;\n]', re.S)


def _address_chunks(text: str) -> list[str]:
    """The entries of a typed address list: split at , ; and line ends outside quotes, in
    linear time (a reply-all to a hostile message fills the field with thousands)."""
    chunks, current = [], []
    for piece in _ADDRESS_PIECE.findall(text):
        if piece in (",", ";", "\n"):
            chunks.append("".join(current).strip())
            current = []
        else:
            current.append(piece)
    chunks.append("".join(current).strip())
    return chunks


def format_addresses(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(formataddr((n, a)) if n else a for n, a in pairs)


def _address_header(pairs: list[tuple[str, str]]) -> list[HeaderAddress]:
    result = []
    for name, address in pairs:
        local, _, domain = address.rpartition("@")
        result.append(HeaderAddress(display_name=name, username=local, domain=domain))
    return result


def build(
    *,
    mailbox: Mailbox,
    draft: Draft,
    include_bcc: bool,
    message_id: str | None = None,
) -> tuple[bytes, str]:
    """The RFC 5322 message for a draft. Returns (raw bytes, Message-ID).

    include_bcc keeps the Bcc field (drafts and the Sent copy); the copy sent to the
    recipients never has it (RFC 5322 3.6.3).
    """
    message = EmailMessage(policy=policy.SMTP)
    if draft.from_address:
        message["From"] = _address_header([(draft.from_name, draft.from_address)])
    else:
        message["From"] = _address_header([(mailbox.display_name, mailbox.address)])
    to, _ = split_addresses(draft.to)
    cc, _ = split_addresses(draft.cc)
    bcc, _ = split_addresses(draft.bcc)
    if to:
        message["To"] = _address_header(to)
    if cc:
        message["Cc"] = _address_header(cc)
    if bcc and include_bcc:
        message["Bcc"] = _address_header(bcc)
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(timezone.now())
    message_id = message_id or make_msgid(domain=mailbox.domain.name)
    message["Message-ID"] = message_id
    if draft.in_reply_to:
        message["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        message["References"] = draft.references
    message["User-Agent"] = "Mailhost webmail"
    body = draft.body.replace("\r\n", "\n")
    if not body.endswith("\n"):
        body += "\n"
    html = rich_html(draft.html) if draft.html.strip() else ""
    if html and not draft.body.strip():
        body = htmltext.to_text(html, limit=len(html)).strip() + "\n"
    message.set_content(body, subtype="plain", charset="utf-8", cte=_cte_for(body))
    if html:
        # multipart/alternative: the text first, the HTML last (RFC 2046 5.1.4)
        document = (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{html}</body></html>\n'
        )
        message.add_alternative(document, subtype="html", charset="utf-8", cte=_cte_for(document))
    for upload in draft.attachments:
        if upload.content_type == "message/rfc822":
            from email.parser import BytesParser

            inner = BytesParser(policy=policy.SMTP).parsebytes(upload.data)
            message.add_attachment(inner, filename=upload.filename)
            continue
        maintype, _, subtype = (upload.content_type or "application/octet-stream").partition("/")
        if maintype == "multipart" or not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            upload.data, maintype=maintype, subtype=subtype, filename=upload.filename
        )
    return message.as_bytes(policy=policy.SMTP), message_id


def rich_html(html: str) -> str:
    """The editor's HTML as the reader's sanitizer leaves it (nh3, webmail/sanitize.py):
    what we send is what we would show."""
    from webmail import sanitize

    return sanitize.clean(html, cid_url=lambda _cid: None, allow_remote=True).html


def _cte_for(body: str) -> str:
    try:
        body.encode("ascii")
    except UnicodeEncodeError:
        return "quoted-printable"
    if any(len(line) > 900 for line in body.splitlines()):
        return "quoted-printable"
    return "7bit"


def guess_type(filename: str, declared: str | None) -> str:
    if declared and "/" in declared and declared != "application/octet-stream":
        return declared.split(";")[0].strip().lower()
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


# --- Reply and forward ---------------------------------------------------------------------


def _prefixed(subject: str, prefix: str) -> str:
    if re.match(rf"(?i)^\s*{prefix}\s*:", subject):
        return subject
    return f"{prefix}: {subject}".strip()


def reply_draft(*, mailbox: Mailbox, original: Message, raw: bytes, reply_all: bool) -> Draft:
    parsed = mime.read(raw)
    to_pairs = parsed.addresses("Reply-To") or parsed.addresses("From")
    own = mailbox.address.lower()
    cc_pairs: list[tuple[str, str]] = []
    if reply_all:
        seen = {a.lower() for _, a in to_pairs} | {own}
        for name in ("To", "Cc"):
            for pair in parsed.addresses(name):
                if pair[1].lower() not in seen:
                    seen.add(pair[1].lower())
                    cc_pairs.append(pair)
    if original.folder.special_use == "\\Sent":
        # Replying to our own message: answer the people we wrote to.
        to_pairs = parsed.addresses("To") or to_pairs
    references = " ".join(x for x in (original.references, original.message_id) if x).split()
    text = parsed.text or mime.html_to_text(parsed.html)
    when = timezone.localtime(original.sent_date or original.internal_date)  # the reader's zone
    author = original.from_display or original.from_address
    intro = f"On {when:%a, %d %b %Y at %H:%M}, {author} wrote:"
    return Draft(
        to=format_addresses(to_pairs),
        cc=format_addresses(cc_pairs),
        subject=_prefixed(original.subject, "Re"),
        body=f"\n\n{intro}\n{mime.quote_text(text)}\n",
        in_reply_to=original.message_id,
        references=" ".join(references[-20:]),
    )


def forward_draft(*, original: Message, raw: bytes, inline: bool) -> Draft:
    subject = _prefixed(original.subject, "Fwd")
    if not inline:
        return Draft(subject=subject, body="\n")
    parsed = mime.read(raw)
    text = parsed.text or mime.html_to_text(parsed.html)
    lines = ["", "", "---------- Forwarded message ----------"]
    for name in ("From", "Date", "Subject", "To", "Cc"):
        value = parsed.header(name)
        if value:
            lines.append(f"{name}: {value}")
    lines.append("")
    lines.append(text)
    return Draft(subject=subject, body="\n".join(lines))


def draft_from_message(raw: bytes) -> Draft:
    """Resume a saved draft."""
    parsed = mime.read(raw)
    message = mime.parse(raw)
    return Draft(
        to=format_addresses(parsed.addresses("To")),
        cc=format_addresses(parsed.addresses("Cc")),
        bcc=format_addresses(parsed.addresses("Bcc")),
        subject=parsed.header("Subject"),
        body=parsed.text.rstrip("\n") + "\n" if parsed.text else "",
        in_reply_to=str(message.get("In-Reply-To") or "").strip(),
        references=" ".join(str(message.get("References") or "").split()),
        from_address=(parsed.addresses("From") or [("", "")])[0][1],
    )

"""The message as the tests see it: header fields in order (editable, RFC 5293), addresses,
body parts (RFC 5173) and dates (RFC 5260)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime

from mailboxes import addresslist
from mailboxes.charsets import part_charset
from mailboxes.headers import blank_line

_FOLD = re.compile(r"\r?\n(?=[ \t])")
MAX_BODY_OCTETS = 1 << 20  # what the body test reads of each part (RFC 5173 leaves it open)
_TAG = re.compile(r"<[^>]*>")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class Message:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        found = blank_line(raw)
        if found:
            head, self.body = raw[: found[0]], raw[found[1] :]
        elif raw.startswith((b"\r\n", b"\n")):
            head, self.body = b"", raw.lstrip(b"\r").removeprefix(b"\n")
        else:
            head, self.body = raw, b""
        # (name, value) with the value unfolded and stripped (RFC 5228 5.7)
        self.fields: list[tuple[str, str]] = []
        for chunk in re.split(r"\r?\n(?![ \t])", _text(head)):
            name, colon, value = chunk.partition(":")
            if colon and name and not name[0].isspace():
                self.fields.append((name.strip(), _FOLD.sub("", value).strip()))
        self._parsed = None
        self._decoded: dict[str, list[str]] = {}

    @property
    def size(self) -> int:
        return len(self.raw)

    def values(self, name: str) -> list[str]:
        """The raw values of every field called `name`, top to bottom."""
        name = name.lower()
        return [value for field_name, value in self.fields if field_name.lower() == name]

    def decoded(self, name: str) -> list[str]:
        """RFC 5228 5.7: header values with RFC 2047 encoded words decoded."""
        name = name.lower()
        if name not in self._decoded:
            self._decoded[name] = [decode_words(value) for value in self.values(name)]
        return self._decoded[name]

    def parsed(self) -> email.message.Message:
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.raw, policy=email.policy.compat32)
        return self._parsed

    # -- editheader (RFC 5293) ------------------------------------------------------------

    def add(self, name: str, value: str, last: bool) -> None:
        self._decoded.clear()
        if last:
            self.fields.append((name, value))
        else:
            self.fields.insert(0, (name, value))

    def delete(self, name: str, occurrences: set[int]) -> None:
        self._decoded.clear()
        lower, seen, kept = name.lower(), 0, []
        for field_name, value in self.fields:
            if field_name.lower() == lower:
                seen += 1
                if seen in occurrences:
                    continue
            kept.append((field_name, value))
        self.fields = kept


def decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # malformed encoded words: the text as it is
        return value


# -- addresses -----------------------------------------------------------------------------


def addresses(value: str) -> list[tuple[str, str | None]]:
    """(local part, domain or None) of each address in a header value, as Pigeonhole reads
    them: a group's members are addresses and its name is not (RFC 5322 3.4), an empty group
    ("undisclosed-recipients:;") reads as its text, and so does a value where no address
    parses ("<>"); an entry without a domain has only its text, for :all (RFC 5228 2.7.4)."""
    entries = addresslist.parse_addresses(value.encode("utf-8"))
    if not entries and value.strip():  # nothing parses ("<>"): the text, for :all
        return [(value.strip(), None)]
    result = []
    for index, (_name, _adl, mailbox, host) in enumerate(entries):
        if mailbox is None or mailbox == addresslist.MISSING_MAILBOX:
            continue
        if host is None:  # a group's name
            if index + 1 < len(entries) and entries[index + 1][2] is None:
                result.append((_text(mailbox) + ":;", None))
            continue
        domain = None if host == addresslist.MISSING_DOMAIN else _text(host)
        result.append((_text(mailbox), domain))
    return result


def envelope_address(value: str) -> tuple[str, str | None]:
    value = value.strip().removeprefix("<").removesuffix(">")
    local, at, domain = value.rpartition("@")
    return (local, domain) if at else (value, None)


def address_part(local: str, domain: str | None, part: str) -> str | None:
    """One address's :all/:localpart/:domain/:user/:detail (RFC 5228 2.7.4, RFC 5233 4);
    None when the address has no such part. A quoted local part ("john doe"@x) is its
    content for :localpart, :user and :detail, as in Pigeonhole; :all keeps the quotes."""
    if part != ":all" and len(local) >= 2 and local[0] == local[-1] == '"':
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    if domain is None and part != ":all":
        return None  # RFC 5228 2.7.4: no :localpart or :domain of an invalid address
    if part == ":localpart":
        return local
    if part == ":domain":
        return domain
    if part in (":user", ":detail"):
        user, plus, detail = local.partition("+")
        if part == ":user":
            return user
        return detail if plus else None
    return f"{local}@{domain}" if domain is not None else local


# -- body (RFC 5173) -----------------------------------------------------------------------


def body_raw(message: Message) -> list[str]:
    """RFC 5173 5.1 :raw: the body undecoded."""
    return [_text(message.body[:MAX_BODY_OCTETS])]


def body_parts(message: Message, types: list[str] | None) -> list[str]:
    """RFC 5173 5.2/5.3: decoded parts whose content type is one of `types` ("text" is a
    type, "text/plain" a subtype, "" every part); None means :text, the text parts."""
    parts = []
    for part in message.parsed().walk():
        ctype = part.get_content_type().lower()
        main = ctype.split("/")[0]
        if types is None:
            if main != "text":
                continue
        elif not any(t == "" or t.lower() in (ctype, main) for t in types):
            continue
        if ctype == "message/rfc822" and part.is_multipart():
            # RFC 5173 5.2: only the nested message's header, as one string; its parts are
            # searched when their own types match.
            [nested] = part.get_payload()[:1] or [email.message.Message()]
            parts.append("".join(f"{name}: {value}\r\n" for name, value in nested.items()))
            continue
        if part.is_multipart():
            parts.append((part.preamble or "") + (part.epilogue or ""))
            continue
        payload = part.get_payload(decode=True) or b""
        payload = payload[:MAX_BODY_OCTETS]
        if main == "text":
            charset = part_charset(part, "us-ascii")
            try:
                text = payload.decode(charset, "replace")
            except LookupError:
                text = _text(payload)
            if types is None and ctype == "text/html":
                text = " ".join(_TAG.sub(" ", text).split())  # HTML as plain words
            parts.append(text)
        else:
            parts.append(_text(payload))
    return parts


# -- dates (RFC 5260) ----------------------------------------------------------------------


def parse_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is not None and parsed.tzinfo is None:
        # "-0000" (RFC 5322 3.3: UTC, local zone unknown), which Python leaves naive
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# -- applying the edits to the bytes ------------------------------------------------------


def apply_edits(raw: bytes, edits: list) -> bytes:
    """The message with the editheader changes: added fields as written (RFC 2047 encoded
    when not ASCII), deleted fields removed, the other octets untouched."""
    from mailboxes.sieve.actions import AddHeader

    found = blank_line(raw)
    head, rest = (raw[: found[0]], raw[found[0] :]) if found else (raw, b"")
    lines = re.split(rb"(?<=\n)(?![ \t])", head + b"\r\n" if head else b"")
    fields = [line for line in lines if line]
    for edit in edits:
        if isinstance(edit, AddHeader):
            line = _encoded_field(edit.name, edit.value)
            fields = [*fields, line] if edit.last else [line, *fields]
            continue
        lower, seen, kept = edit.name.lower().encode(), 0, []
        occurrences = set(edit.occurrences)
        for line in fields:
            if line.split(b":", 1)[0].strip().lower() == lower:
                seen += 1
                if seen in occurrences:
                    continue
            kept.append(line)
        fields = kept
    new_head = b"".join(fields)
    if not found:
        return new_head
    return new_head.removesuffix(b"\r\n").removesuffix(b"\n") + rest


def _encoded_field(name: str, value: str) -> bytes:
    if value.isascii():
        text = value
    else:
        from email.header import Header

        text = Header(value, "utf-8", header_name=name).encode()
    return f"{name}: {text}\r\n".encode("ascii", "replace")

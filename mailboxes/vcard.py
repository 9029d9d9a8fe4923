"""vCard (RFC 6350 4.0, RFC 2426 3.0), the little an address book needs: split a file into
cards, read FN, N, EMAIL and UID from each, write a card. Sans-IO: text in, values out.

Lines are unfolded (a CRLF or LF followed by a space or tab continues the line), values
unescaped (\\n, \\, \\; \\\\). A card is kept as written, so an export gives back what a phone
put in (photos, phone numbers, everything we do not read).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

MAX_CARD = 256 * 1024  # one card's text; a photo is usually far below


class VCardError(ValueError):
    pass


@dataclass
class Card:
    uid: str
    name: str
    emails: list[str] = field(default_factory=list)
    text: str = ""


def _unfold(text: str) -> list[str]:
    return re.sub(r"\r?\n[ \t]", "", text).replace("\r\n", "\n").split("\n")


def _unescape(value: str) -> str:
    return re.sub(r"\\([nN,;\\])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


@dataclass(frozen=True)
class Property:
    """One content line, unfolded: name (upper case, no group), parameters (names upper
    case, values as written, unquoted) and the value unescaped."""

    name: str
    params: dict[str, list[str]]
    value: str


def _params(head: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in re.findall(r';((?:[^;"]|"[^"]*")*)', head):
        key, sep, values = part.partition("=")
        key = key.strip().upper()
        if not sep:  # vCard 2.1/3.0 bare type: TEL;CELL
            key, values = "TYPE", key
        items = re.findall(r'"([^"]*)"|([^,]+)', values)
        found.setdefault(key, []).extend(q or b for q, b in items)
    return found


def properties(text: str) -> list[Property]:
    """Every property of one card, in order (for CardDAV's filters, RFC 6352 10.5)."""
    result = []
    for line in _unfold(text):
        head, sep, value = line.partition(":")
        # a colon inside a quoted parameter value is not the separator
        while sep and head.count('"') % 2:
            more, sep, value = value.partition(":")
            head = f"{head}:{more}"
        if not sep:
            continue
        name = head.split(";", 1)[0].rsplit(".", 1)[-1].strip().upper()
        if name in ("BEGIN", "END"):
            continue
        params = _params(head[len(head.split(";", 1)[0]) :])
        result.append(Property(name, params, _unescape(value)))
    return result


def _split(line: str) -> tuple[str, str]:
    """(property name without group and parameters, upper case; raw value)."""
    head, sep, value = line.partition(":")
    if not sep:
        return "", ""
    name = head.split(";", 1)[0].rsplit(".", 1)[-1].strip().upper()
    return name, value


def parse(text: str) -> list[Card]:
    """Every card of a .vcf file; raises VCardError for a file with no card or a card left
    open."""
    cards: list[Card] = []
    current: list[str] | None = None
    raw_lines = text.replace("\r\n", "\n").split("\n")
    # keep folded raw text per card: walk raw lines for the text, unfolded for the values
    raw_current: list[str] = []
    for raw in raw_lines:
        if current is None:
            if raw.strip().upper() == "BEGIN:VCARD":
                current, raw_current = [], [raw]
            continue
        raw_current.append(raw)
        if raw.strip().upper() == "END:VCARD":
            body = "\n".join(raw_current)
            if len(body) > MAX_CARD:
                raise VCardError("a card is larger than 256 KiB")
            cards.append(_card(body))
            current = None
    if current is not None:
        raise VCardError("a card has no END:VCARD")
    if not cards:
        raise VCardError("no BEGIN:VCARD found")
    return cards


def _card(body: str) -> Card:
    name = structured = uid = ""
    emails: list[str] = []
    for line in _unfold(body):
        prop, value = _split(line)
        if prop == "FN" and not name:
            name = _unescape(value).strip()
        elif prop == "N" and not structured:
            parts = [_unescape(p).strip() for p in re.split(r"(?<!\\);", value)]
            structured = " ".join(p for p in (parts[1:2] + parts[:1]) if p)
        elif prop == "EMAIL":
            address = _unescape(value).strip()
            if address.lower().startswith("mailto:"):
                address = address[7:]
            if address and address not in emails:
                emails.append(address)
        elif prop == "UID" and not uid:
            uid = _unescape(value).strip()
    text = body.replace("\r\n", "\n").replace("\n", "\r\n").rstrip("\r\n") + "\r\n"
    if not uid:  # RFC 6350 6.7.6: a card is matched by its UID (a re-import, CardDAV)
        uid = str(uuid.uuid4())
        text = text.replace("\r\nEND:VCARD", f"\r\nUID:{uid}\r\nEND:VCARD", 1)
    if not name and structured:  # RFC 6350 6.2.1: FN is required
        text = text.replace("\r\nEND:VCARD", f"\r\nFN:{_escape(structured)}\r\nEND:VCARD", 1)
    return Card(uid=uid[:255], name=(name or structured)[:200], emails=emails, text=text)


def write(*, name: str, emails: list[str], uid: str | None = None) -> Card:
    """A vCard 4.0 for a contact made in the webmail."""
    uid = uid or str(uuid.uuid4())
    lines = ["BEGIN:VCARD", "VERSION:4.0", f"UID:{_escape(uid)}", f"FN:{_escape(name)}"]
    lines += [f"EMAIL:{_escape(e)}" for e in emails]
    lines.append("END:VCARD")
    return Card(uid=uid, name=name, emails=list(emails), text="\r\n".join(lines) + "\r\n")

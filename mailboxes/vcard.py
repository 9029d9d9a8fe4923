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


def _property(line: str) -> Property | None:
    """One unfolded content line read; None for BEGIN/END and lines that are no property."""
    head, sep, value = line.partition(":")
    # a colon inside a quoted parameter value is not the separator
    while sep and head.count('"') % 2:
        more, sep, value = value.partition(":")
        head = f"{head}:{more}"
    if not sep:
        return None
    name = head.split(";", 1)[0].rsplit(".", 1)[-1].strip().upper()
    if name in ("BEGIN", "END"):
        return None
    return Property(name, _params(head[len(head.split(";", 1)[0]) :]), _unescape(value))


def properties(text: str) -> list[Property]:
    """Every property of one card, in order (for CardDAV's filters, RFC 6352 10.5)."""
    return [prop for line in _unfold(text) if (prop := _property(line)) is not None]


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


# --- Editing a card (the webmail's contact form) ---------------------------------------------
#
# Only the properties the form shows are touched, and only when their values change: a card
# saved unchanged is byte for byte the card it was, and whatever the form does not show
# (photos, addresses, birthdays, parameters, groups, X- properties) is kept as written.


@dataclass
class Fields:
    """What the contact form edits: FN, N's family and given names, every EMAIL and TEL,
    and NOTE."""

    name: str = ""
    given: str = ""
    family: str = ""
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    note: str = ""


def _components(value: str) -> list[str]:
    return re.split(r"(?<!\\);", value)


def _phone(prop: Property) -> str:
    # vCard 4.0 writes TEL as a URI (RFC 6350 6.4.1): show the number, not the scheme
    value = prop.value.strip()
    return value[4:] if value.lower().startswith("tel:") else value


def _email(prop: Property) -> str:
    address = prop.value.strip()
    return address[7:] if address.lower().startswith("mailto:") else address


def fields(text: str) -> Fields:
    """The form's values of one card."""
    found = Fields()
    raw_n = ""
    for line in _unfold(text):
        prop = _property(line)
        if prop is None:
            continue
        if prop.name == "FN" and not found.name:
            found.name = prop.value.strip()
        elif prop.name == "N" and not raw_n:
            raw_n = line.partition(":")[2] or ";"
            parts = [_unescape(p).strip() for p in _components(raw_n)] + ["", ""]
            found.family, found.given = parts[0], parts[1]
        elif prop.name == "EMAIL":
            found.emails.append(_email(prop))
        elif prop.name == "TEL":
            found.phones.append(_phone(prop))
        elif prop.name == "NOTE" and not found.note:
            found.note = prop.value
    return found


def _fold(line: str) -> str:
    """RFC 6350 3.2: lines of at most 75 octets, continued after CRLF and a space; never in
    the middle of a UTF-8 character."""
    out, current, size = [], "", 0
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > 75:
            out.append(current)
            current, size = " ", 1
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


def _logical_lines(text: str) -> list[str]:
    """The card's content lines, each with its folds (as written)."""
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += "\r\n" + raw
        elif raw:
            lines.append(raw)
    return lines


def _name_of(raw: str) -> str:
    prop = _property(_unfold(raw)[0])
    return prop.name if prop is not None else ""


def _value_of(raw: str) -> str:
    return _unfold(raw)[0].partition(":")[2]


def edit(text: str, changed: Fields) -> Card:
    """The card `text` with the form's values: a property whose value is unchanged keeps its
    line as written; a changed FN, N or NOTE keeps its group and parameters; an EMAIL or TEL
    the form still lists keeps its line (and its TYPE), one it dropped goes, a new one is
    added at the end. Raises VCardError for a text that is not one card."""
    cards = parse(text)
    if len(cards) != 1:
        raise VCardError("one card expected")
    before = fields(cards[0].text)
    if before == changed:
        return cards[0]
    lines = _logical_lines(cards[0].text)
    version = next((_value_of(line).strip() for line in lines if _name_of(line) == "VERSION"), "")
    added: list[str] = []

    def replace_single(name: str, old: str, new: str, build) -> None:
        if old == new:
            return
        index = next((i for i, line in enumerate(lines) if _name_of(line) == name), None)
        if index is None:
            if new:
                added.append(build(""))
            return
        if new:
            head = _unfold(lines[index])[0].partition(":")[0]
            lines[index] = _fold(f"{head}:" + build(lines[index]).partition(":")[2])
        else:
            del lines[index]

    name = changed.name.strip() or " ".join(p for p in (changed.given, changed.family) if p)
    name = name or (changed.emails[0] if changed.emails else "")
    replace_single("FN", before.name, name, lambda _old: f"FN:{_escape(name)}")

    def build_n(old: str) -> str:
        rest = [_unescape(p) for p in _components(_value_of(old))][2:] if old else []
        parts = [changed.family.strip(), changed.given.strip(), *rest] + [""] * 5
        return "N:" + ";".join(_escape(p) for p in parts[: max(5, len(rest) + 2)])

    if (changed.family.strip(), changed.given.strip()) != (before.family, before.given):
        replace_single("N", "\0", "\1", build_n)  # always differs: rewrite or add
    replace_single("NOTE", before.note, changed.note, lambda _old: f"NOTE:{_escape(changed.note)}")

    for prop_name, old_values, new_values, show in (
        ("EMAIL", before.emails, changed.emails, _email),
        ("TEL", before.phones, changed.phones, _phone),
    ):
        if old_values == new_values:
            continue
        wanted = list(dict.fromkeys(v for v in new_values if v))
        kept: list[str] = []
        for i in range(len(lines) - 1, -1, -1):
            if _name_of(lines[i]) != prop_name:
                continue
            value = show(_property(_unfold(lines[i])[0]))
            if value in wanted and value not in kept:
                kept.append(value)
            else:
                del lines[i]
        for value in wanted:
            if value in kept:
                continue
            if prop_name == "TEL" and version.startswith("4"):
                added.append(f"TEL;VALUE=text:{_escape(value)}")
            else:
                added.append(f"{prop_name}:{_escape(value)}")

    end = next(i for i in range(len(lines) - 1, -1, -1) if lines[i].strip().upper() == "END:VCARD")
    lines[end:end] = [_fold(line) for line in added]
    return _card("\r\n".join(lines) + "\r\n")

"""Exact parsing, measured against an oracle (issue 19): the real-world messages under
corpus/ (public parser test suites, see corpus/README.md) APPENDed to Mailhost and to a stock
Dovecot (tests/support/dovecot.py) in the same run, both through imaplib over real sockets,
and compared item by item: RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY[n.MIME] of every part,
BINARY.SIZE and BINARY[n] of every leaf part, and the answers to a fixed set of SEARCH keys.

Only what the RFCs leave free is normalized, each where it is done:
- the wire form of a string (quoted or literal, RFC 9051 4.3: the same string either way):
  the answers are parsed into values before they are compared;
- the case of MIME type, subtype, parameter names, transfer encoding and disposition type
  in BODYSTRUCTURE (case-insensitive tokens, RFC 2045 5.1 and 6.1, RFC 2183 2.8);
- a body language of one tag, sent as a string or as a list of one string (RFC 9051 9,
  body-fld-lang);
- FETCH item order and the UID item (RFC 9051 7.5.2: items in any order).

Every remaining difference is either fixed in Mailhost or listed in KNOWN with the RFC text
that allows it (README, "IMAP beside Dovecot"); the test fails on any difference not listed
and on any listed one that no longer differs, and prints the agreement figure. With
MAILHOST_DIFFERENTIAL_REPORT=<file> it writes every difference, both answers, to that file.
"""

from __future__ import annotations

import imaplib
import os
import re
from pathlib import Path

import pytest

from tests.support import dovecot

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not dovecot.available(), reason="dovecot not installed (Debian package dovecot-imapd)"
    ),
]

CORPUS = Path(__file__).parent / "corpus"

# (key as sent, literal needle or None): ASCII and non-ASCII needles, header and body keys,
# sizes and dates. A needle goes as a literal after CHARSET UTF-8.
SEARCHES: list[tuple[str, bytes | None]] = [
    ("FROM", b"example"),
    ("FROM", b"mikel"),
    ("TO", b"lindsaar"),
    ("TO", b".com"),
    ("CC", b"@"),
    ("BCC", b"@"),
    ("SUBJECT", b"test"),
    ("SUBJECT", b"Re:"),
    ("SUBJECT", "日本".encode()),
    ("SUBJECT", "é".encode()),
    ("SUBJECT", "Ü".encode()),
    ("BODY", b"attachment"),
    ("BODY", b"hello"),
    ("BODY", "ä".encode()),
    ("BODY", "こんにちは".encode()),
    ("BODY", "€".encode()),
    ("TEXT", b"boundary"),
    ("TEXT", b"Content-Type"),
    ("TEXT", "ü".encode()),
    ("HEADER Message-ID", b"@"),
    ("HEADER Content-Type", b"multipart"),
    ("HEADER X-Mailer", b""),
    ("HEADER Received", b"by"),
    ("HEADER Subject", "ß".encode()),
    ("LARGER 2000", None),
    ("SMALLER 1000", None),
    ("SENTBEFORE 1-Jan-2005", None),
    ("SENTSINCE 1-Jan-2010", None),
    ("SENTON 21-Nov-1997", None),
    ("NOT FROM @", None),
]


# -- an IMAP value reader for the answers (strings, literals, lists, NIL, atoms) -----------


def parse_values(data: bytes) -> list:
    values, pos = _parse_list(data, 0, top=True)
    return values


def _parse_list(data: bytes, pos: int, *, top: bool = False) -> tuple[list, int]:
    out: list = []
    while pos < len(data):
        c = data[pos : pos + 1]
        if c in (b" ", b"\r", b"\n"):
            pos += 1
        elif c == b"(":
            value, pos = _parse_list(data, pos + 1)
            out.append(value)
        elif c == b")":
            if top:
                raise ValueError(f"unbalanced ) at {pos}")
            return out, pos + 1
        elif c == b'"':
            end, chunk = pos + 1, bytearray()
            while data[end : end + 1] != b'"':
                if data[end : end + 1] == b"\\":
                    end += 1
                chunk += data[end : end + 1]
                end += 1
            out.append(bytes(chunk))
            pos = end + 1
        elif c in (b"{", b"~") and re.match(rb"~?\{\d+\+?\}", data[pos:]):
            match = re.match(rb"~?\{(\d+)\+?\}", data[pos:])
            size, start = int(match[1]), pos + match.end()
            out.append(data[start : start + size])
            pos = start + size
        else:
            end = pos
            while end < len(data) and data[end : end + 1] not in b" ()\r\n":
                if data[end : end + 1] == b"[":
                    end = data.index(b"]", end)
                end += 1
            atom = data[pos:end].decode("latin-1")
            out.append(None if atom.upper() == "NIL" else atom)
            pos = end
    if not top:
        raise ValueError("unterminated list")
    return out, pos


def joined(data: list) -> bytes:
    """imaplib's pieces of an answer (lines and (line, literal) pairs) as sent."""
    out = b""
    for piece in data:
        if isinstance(piece, tuple):
            out += piece[0] + piece[1]
        elif piece is not None:
            out += piece
    return out


def fetch_items(client: imaplib.IMAP4, sequence: str, items: str) -> tuple[str, dict]:
    """{message number: {ITEM: value}} for one FETCH, and the tagged status."""
    typ, data = client.fetch(sequence, items)
    answers: dict[int, dict] = {}
    if typ != "OK":
        return typ, answers
    raw = b" ".join(joined([piece]) for piece in data)
    try:
        values = parse_values(raw)
    except ValueError as error:
        raise ValueError(f"{error}: {raw[:2000]!r}") from None
    for number, pairs in zip(values[0::2], values[1::2], strict=True):
        items_of = answers.setdefault(int(number), {})
        for name, value in zip(pairs[0::2], pairs[1::2], strict=True):
            items_of[name.upper()] = value
    return typ, answers


# -- the walk over BODYSTRUCTURE: part numbers, leaves ------------------------------------


def parts(structure: list, prefix: str = "") -> list[tuple[str, bool]]:
    """(part number, is leaf) for every part below the message, as RFC 9051 6.4.5 numbers
    them: the children of a multipart 1..n, the body of a message/rfc822 part below it."""
    out: list[tuple[str, bool]] = []
    if isinstance(structure[0], list):  # multipart
        children = structure[: next(i for i, c in enumerate(structure) if not isinstance(c, list))]
        for index, child in enumerate(children, start=1):
            number = f"{prefix}{index}"
            out.append((number, not isinstance(child[0], list) and not is_message(child)))
            out.extend(inner(child, number))
    elif not prefix:
        out.append(("1", not is_message(structure)))
        out.extend(inner(structure, "1"))
    return out


def inner(structure: list, number: str) -> list[tuple[str, bool]]:
    if isinstance(structure[0], list):
        return parts(structure, number + ".")
    if is_message(structure) and len(structure) > 8 and isinstance(structure[8], list):
        body = structure[8]
        if isinstance(body[0], list):
            return parts(body, number + ".")
        return [(number + ".1", not is_message(body)), *inner(body, number + ".1")]
    return []


def is_message(structure: list) -> bool:
    return (
        isinstance(structure[0], bytes)
        and structure[0].lower() == b"message"
        and isinstance(structure[1], bytes)
        and structure[1].lower() in (b"rfc822", b"global")
    )


def _low(value):
    return value.lower() if isinstance(value, bytes) else value


def _params(values):
    if not isinstance(values, list):
        return values
    return [_low(v) if i % 2 == 0 else v for i, v in enumerate(values)]


def _disposition(value):
    if isinstance(value, list) and value:
        return [_low(value[0]), _params(value[1]), *value[2:]]
    return value


def _language(value):
    # body-fld-lang is `nstring / "(" string *(SP string) ")"` (RFC 9051 9): one tag may go
    # either way.
    return [value] if isinstance(value, bytes) else value


def normal_structure(structure):
    """BODYSTRUCTURE with its case-insensitive tokens lowered (RFC 2045 5.1, 6.1; RFC 2183)."""
    if not isinstance(structure, list) or not structure:
        return structure
    out = list(structure)
    if isinstance(out[0], list):  # multipart: children, subtype, params, disposition, ...
        count = next((i for i, c in enumerate(out) if not isinstance(c, list)), len(out))
        children = [normal_structure(c) for c in out[:count]]
        rest = out[len(children) :]
        if rest:
            rest[0] = _low(rest[0])
        if len(rest) > 1:
            rest[1] = _params(rest[1])
        if len(rest) > 2:
            rest[2] = _disposition(rest[2])
        if len(rest) > 3:
            rest[3] = _language(rest[3])
        return children + rest
    if len(out) < 7:
        return out
    out[0], out[1], out[2], out[5] = _low(out[0]), _low(out[1]), _params(out[2]), _low(out[5])
    extension = 7
    if is_message(structure):
        out[8] = normal_structure(out[8])
        extension = 10
    elif isinstance(out[0], bytes) and out[0] == b"text":
        extension = 8
    if len(out) > extension + 1:
        out[extension + 1] = _disposition(out[extension + 1])
    if len(out) > extension + 2:
        out[extension + 2] = _language(out[extension + 2])
    return out


# -- one server's answers -----------------------------------------------------------------


def messages() -> list[tuple[str, bytes]]:
    return [
        (str(path.relative_to(CORPUS)), path.read_bytes()) for path in sorted(CORPUS.rglob("*.eml"))
    ]


def search(client: imaplib.IMAP4, key: str, needle: bytes | None) -> tuple[str, frozenset]:
    if needle is None:
        typ, data = client.search(None, key)
    elif needle.isascii():
        typ, data = client.search(None, key, f'"{needle.decode()}"')
    else:
        client.literal = needle
        typ, data = client._simple_command("SEARCH", "CHARSET", "UTF-8", key)
        typ, data = client._untagged_response(typ, data, "SEARCH")
    numbers = (
        frozenset(int(n) for n in b" ".join(d for d in data if d).split())
        if typ == "OK"
        else frozenset()
    )
    return typ, numbers


def connect(port: int, user: str, corpus: list[tuple[str, bytes]]) -> imaplib.IMAP4:
    """One session: every message APPENDed in corpus order, INBOX selected."""
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(user, "secret")
    for name, raw in corpus:
        typ, data = client.append("INBOX", None, None, raw)
        assert typ == "OK", (name, data)
    typ, data = client.select("INBOX")
    assert typ == "OK" and int(data[0]) == len(corpus), data
    return client


def whole(client: imaplib.IMAP4) -> dict[int, dict]:
    typ, answers = fetch_items(client, "1:*", "(RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK"
    return answers


class Side:
    """One server's session, opened again when the server drops it (Dovecot ends the
    session on a BINARY of a truncated base64 part: 'Base64 data ends prematurely')."""

    def __init__(self, port: int, user: str, corpus: list[tuple[str, bytes]]) -> None:
        self.port, self.user = port, user
        self.client = connect(port, user, corpus)
        self.dropped = 0

    def reopen(self) -> None:
        self.dropped += 1
        self.client = imaplib.IMAP4("127.0.0.1", self.port)
        self.client.login(self.user, "secret")
        self.client.select("INBOX")


DROPPED = ("BYE", None)


def per_part(side: Side, number: int, numbering: list[tuple[str, bool]]) -> dict:
    """BODY[n.MIME] of every part in one FETCH, BINARY.SIZE[n] and BINARY[n] of every leaf
    in another."""
    items: dict = {}
    client = side.client
    if numbering:
        mime = " ".join(f"BODY.PEEK[{n}.MIME]" for n, _ in numbering)
        typ, answers = fetch_items(client, str(number), f"({mime})")
        for n, _ in numbering:
            items[f"BODY[{n}.MIME]"] = (typ, answers.get(number, {}).get(f"BODY[{n}.MIME]"))
    leaves = [n for n, leaf in numbering if leaf]
    if leaves:
        # All leaves in one FETCH; one by one when it fails (one part's unknown transfer
        # encoding fails the whole command, RFC 3516 4.3).
        wanted = " ".join(f"BINARY.SIZE[{n}] BINARY.PEEK[{n}]" for n in leaves)
        try:
            typ, answers = fetch_items(side.client, str(number), f"({wanted})")
        except imaplib.IMAP4.abort:
            side.reopen()
            typ = "BYE"
        if typ == "OK":
            got = answers.get(number, {})
            for n in leaves:
                items[f"BINARY.SIZE[{n}]"] = (typ, got.get(f"BINARY.SIZE[{n}]"))
                items[f"BINARY[{n}]"] = (typ, got.get(f"BINARY[{n}]"))
            return items
    for n in leaves:
        try:
            typ, answers = fetch_items(
                side.client, str(number), f"(BINARY.SIZE[{n}] BINARY.PEEK[{n}])"
            )
        except imaplib.IMAP4.abort:
            side.reopen()
            items[f"BINARY.SIZE[{n}]"] = items[f"BINARY[{n}]"] = DROPPED
            continue
        got = answers.get(number, {})
        items[f"BINARY.SIZE[{n}]"] = (typ, got.get(f"BINARY.SIZE[{n}]"))
        items[f"BINARY[{n}]"] = (typ, got.get(f"BINARY[{n}]"))
    return items


def compare(ours: Side, theirs: Side, corpus) -> tuple[int, dict, list, list]:
    """(items that agree, {(message name, item): (ours, theirs)} for those that do not,
    the items the oracle gave no answer to (it dropped the session), the BINARY.SIZE items
    where the oracle's size is not the length of its own BINARY[] and ours is)."""
    agree, differ, unanswered, inconsistent = 0, {}, [], []

    def check(name: str, item: str, mine, other) -> None:
        nonlocal agree
        if other == DROPPED:
            unanswered.append((name, item))
        elif mine == other:
            agree += 1
        else:
            differ[(name, item)] = (mine, other)

    mine_all, other_all = whole(ours.client), whole(theirs.client)
    for number, (name, _raw) in enumerate(corpus, start=1):
        mine, other = mine_all.get(number, {}), other_all.get(number, {})
        check(name, "RFC822.SIZE", mine.get("RFC822.SIZE"), other.get("RFC822.SIZE"))
        check(name, "ENVELOPE", mine.get("ENVELOPE"), other.get("ENVELOPE"))
        structure = other.get("BODYSTRUCTURE")
        check(
            name,
            "BODYSTRUCTURE",
            normal_structure(mine.get("BODYSTRUCTURE")),
            normal_structure(structure),
        )
        # The oracle's parts are the ones asked of both.
        numbering = parts(structure) if structure else []
        mine_parts, other_parts = (
            per_part(ours, number, numbering),
            per_part(theirs, number, numbering),
        )
        for item in other_parts:
            mine_item, other_item = mine_parts.get(item), other_parts[item]
            if item.startswith("BINARY.SIZE") and mine_item != other_item:
                # RFC 3516 4.2: BINARY.SIZE is the size of the section BINARY[] returns.
                # Dovecot 2.3 answers a smaller one for some quoted-printable and base64
                # text parts than the literal it sends for BINARY[] of the same part.
                section = other_parts[item.replace("BINARY.SIZE", "BINARY")]
                if (
                    section[0] == "OK"
                    and section[1] is not None
                    and mine_item
                    == (
                        "OK",
                        str(len(section[1])),
                    )
                ):
                    inconsistent.append((name, item))
                    continue
            check(name, item, mine_item, other_item)
    for key, needle in SEARCHES:
        label = key if needle is None else f"{key} {needle.decode()!r}"
        mine_typ, mine_hits = search(ours.client, key, needle)
        other_typ, other_hits = search(theirs.client, key, needle)
        assert mine_typ == other_typ == "OK", (label, mine_typ, other_typ)
        for number, (name, _raw) in enumerate(corpus, start=1):
            check(name, f"SEARCH {label}", number in mine_hits, number in other_hits)
    return agree, differ, unanswered, inconsistent


# (message, item) -> the class of difference; each class is explained, with the RFC text
# that leaves the answer free (or marked not yet fixed), in README ("IMAP beside Dovecot").
KNOWN: dict[tuple[str, str], str] = {
    (
        "mikel-mail/attachment_emails_attachment_only_email.eml",
        "SEARCH HEADER Subject 'ß'",
    ): "casemap",
    (
        "mikel-mail/attachment_emails_attachment_with_unquoted_name.eml",
        "BODYSTRUCTURE",
    ): "broken-mime",
    ("mikel-mail/error_emails_bad_date_header.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/error_emails_bad_date_header.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("mikel-mail/error_emails_bad_date_header2.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    (
        "mikel-mail/error_emails_bad_encoded_subject.eml",
        "SEARCH SENTBEFORE 1-Jan-2005",
    ): "sent-date",
    ("mikel-mail/error_emails_bad_subject.eml", "ENVELOPE"): "envelope",
    (
        "mikel-mail/error_emails_content_transfer_encoding_empty.eml",
        "BINARY.SIZE[1]",
    ): "lenient-cte",
    ("mikel-mail/error_emails_content_transfer_encoding_empty.eml", "BINARY[1]"): "lenient-cte",
    (
        "mikel-mail/error_emails_content_transfer_encoding_empty.eml",
        "SEARCH BCC '@'",
    ): "broken-header",
    (
        "mikel-mail/error_emails_content_transfer_encoding_empty.eml",
        "SEARCH SENTBEFORE 1-Jan-2005",
    ): "sent-date",
    (
        "mikel-mail/error_emails_content_transfer_encoding_qp_with_space.eml",
        "BINARY.SIZE[2]",
    ): "lenient-cte",
    (
        "mikel-mail/error_emails_content_transfer_encoding_qp_with_space.eml",
        "BINARY[2]",
    ): "lenient-cte",
    (
        "mikel-mail/error_emails_content_transfer_encoding_qp_with_space.eml",
        "BODYSTRUCTURE",
    ): "unknown-cte-name",
    (
        "mikel-mail/error_emails_content_transfer_encoding_qp_with_space.eml",
        "SEARCH HEADER Subject 'ß'",
    ): "casemap",
    (
        "mikel-mail/error_emails_content_transfer_encoding_text-html.eml",
        "BODYSTRUCTURE",
    ): "broken-mime",
    (
        "mikel-mail/error_emails_content_transfer_encoding_text-html.eml",
        "SEARCH BODY 'hello'",
    ): "broken-header",
    (
        "mikel-mail/error_emails_content_transfer_encoding_with_semi_colon.eml",
        "BINARY.SIZE[1]",
    ): "lenient-cte",
    (
        "mikel-mail/error_emails_content_transfer_encoding_with_semi_colon.eml",
        "BINARY[1]",
    ): "lenient-cte",
    (
        "mikel-mail/error_emails_content_transfer_encoding_with_semi_colon.eml",
        "BODYSTRUCTURE",
    ): "unknown-cte-name",
    (
        "mikel-mail/error_emails_content_transfer_encoding_x_uuencode.eml",
        "BINARY.SIZE[1]",
    ): "lenient-cte",
    (
        "mikel-mail/error_emails_content_transfer_encoding_x_uuencode.eml",
        "BINARY[1]",
    ): "lenient-cte",
    (
        "mikel-mail/error_emails_invalid_subject_characters.eml",
        "SEARCH SENTBEFORE 1-Jan-2005",
    ): "sent-date",
    ("mikel-mail/error_emails_missing_body.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/error_emails_missing_body.eml", "SEARCH TO '.com'"): "broken-header",
    ("mikel-mail/error_emails_missing_content_disposition.eml", "BODYSTRUCTURE"): "broken-mime",
    (
        "mikel-mail/error_emails_multiple_content_types.eml",
        "SEARCH SENTBEFORE 1-Jan-2005",
    ): "sent-date",
    (
        "mikel-mail/error_emails_multiple_invalid_content_dispositions.eml",
        "BODYSTRUCTURE",
    ): "broken-mime",
    (
        "mikel-mail/error_emails_multiple_invalid_content_dispositions.eml",
        "SEARCH SENTBEFORE 1-Jan-2005",
    ): "sent-date",
    (
        "mikel-mail/error_emails_multiple_references_with_one_invalid.eml",
        "SEARCH SENTBEFORE 1-Jan-2005",
    ): "sent-date",
    ("mikel-mail/error_emails_must_supply_encoding.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    (
        "mikel-mail/error_emails_trademark_character_in_subject.eml",
        "SEARCH SENTSINCE 1-Jan-2010",
    ): "sent-date",
    ("mikel-mail/error_emails_weird_to_header.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/mime_emails_raw_email4.eml", "BINARY.SIZE[3]"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email4.eml", "BINARY[3]"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email4.eml", "BINARY[4]"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email4.eml", "BODYSTRUCTURE"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email4.eml", "BODY[4.MIME]"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email_with_binary_encoded.eml", "BINARY[2]"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email_with_binary_encoded.eml", "BODYSTRUCTURE"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email_with_binary_encoded.eml", "BODY[2.MIME]"): "broken-mime",
    ("mikel-mail/mime_emails_raw_email_with_binary_encoded.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/mime_emails_raw_email_with_illegal_boundary.eml", "BINARY[3]"): "broken-mime",
    (
        "mikel-mail/mime_emails_raw_email_with_illegal_boundary.eml",
        "BODYSTRUCTURE",
    ): "unknown-cte-name",
    ("mikel-mail/mime_emails_raw_email_with_illegal_boundary.eml", "BODY[3.MIME]"): "broken-mime",
    (
        "mikel-mail/mime_emails_raw_email_with_mimepart_without_content_type.eml",
        "SEARCH HEADER Subject 'ß'",
    ): "casemap",
    (
        "mikel-mail/mime_emails_raw_email_with_multipart_mixed_quoted_boundary.eml",
        "ENVELOPE",
    ): "envelope",
    ("mikel-mail/mime_emails_two_from_in_message.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("mikel-mail/multi_charset_japanese.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("mikel-mail/multi_charset_japanese_iso_2022.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("mikel-mail/multipart_report_emails_report_422.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("mikel-mail/plain_emails_mix_caps_content_type.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/plain_emails_raw_email_bad_time.eml", "BINARY[3]"): "broken-mime",
    ("mikel-mail/plain_emails_raw_email_bad_time.eml", "BODYSTRUCTURE"): "unknown-cte-name",
    ("mikel-mail/plain_emails_raw_email_bad_time.eml", "BODY[3.MIME]"): "broken-mime",
    ("mikel-mail/plain_emails_raw_email_bad_time.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("mikel-mail/plain_emails_raw_email_bad_time.eml", "SEARCH SENTSINCE 1-Jan-2010"): "sent-date",
    ("mikel-mail/plain_emails_raw_email_multiple_from.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/plain_emails_raw_email_with_at_display_name.eml", "ENVELOPE"): "envelope",
    (
        "mikel-mail/plain_emails_raw_email_with_bad_date.eml",
        "SEARCH SENTBEFORE 1-Jan-2005",
    ): "sent-date",
    ("mikel-mail/rfc2822_example04.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("mikel-mail/rfc2822_example04.eml", "SEARCH SENTSINCE 1-Jan-2010"): "sent-date",
    ("mikel-mail/rfc2822_example10.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("mikel-mail/rfc2822_example10.eml", "SEARCH SENTSINCE 1-Jan-2010"): "sent-date",
    ("mikel-mail/rfc2822_example11.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/rfc2822_example13.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/rfc2822_example13.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("mikel-mail/rfc2822_example13.eml", "SEARCH SENTON 21-Nov-1997"): "sent-date",
    ("mikel-mail/rfc2822_example14.eml", "ENVELOPE"): "envelope",
    ("mikel-mail/rfc6532_utf8_headers.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("php-mime-mail-parser/failure.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("php-mime-mail-parser/issue116.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("php-mime-mail-parser/issue126.eml", "BINARY.SIZE[1]"): "lenient-cte",
    ("php-mime-mail-parser/issue126.eml", "BINARY[1]"): "lenient-cte",
    ("php-mime-mail-parser/issue126.eml", "SEARCH BODY 'attachment'"): "broken-header",
    ("php-mime-mail-parser/issue133.eml", "BODYSTRUCTURE"): "broken-mime",
    ("php-mime-mail-parser/issue212.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("php-mime-mail-parser/issue250.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("php-mime-mail-parser/m0014.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("php-mime-mail-parser/m0016.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("php-mime-mail-parser/m0022.eml", "ENVELOPE"): "envelope",
    ("php-mime-mail-parser/m0027.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("php-mime-mail-parser/m0124.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("postal-mime/calendar-event.eml", "ENVELOPE"): "envelope",
    ("postal-mime/mimetorture.eml", "BODYSTRUCTURE"): "envelope",
    ("postal-mime/mixed.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/legacy/000.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/006.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/008.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/014.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/017.eml", "BINARY.SIZE[1]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/017.eml", "BINARY[1]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/017.eml", "SEARCH TEXT 'ü'"): "raw-8bit",
    ("stalwart-mail-parser/legacy/019.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/021.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/026.eml", "BINARY.SIZE[1]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/026.eml", "BINARY.SIZE[3]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/026.eml", "BINARY[1]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/026.eml", "BINARY[3]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/028.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/029.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/030.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/031.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/032.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/033.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/035.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/037.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/038.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/039.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/042.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/044.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/047.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/048.eml", "BINARY.SIZE[1]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/048.eml", "BINARY[1]"): "lenient-cte",
    ("stalwart-mail-parser/legacy/048.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/049.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/legacy/052.eml", "SEARCH TEXT 'ü'"): "raw-8bit",
    ("stalwart-mail-parser/legacy/COPYING.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/000.eml", "BODY[2.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/000.eml", "BODY[3.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/000.eml", "BODY[4.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/000.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/001.eml", "BODY[1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/001.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/002.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/003.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/004.eml", "BINARY.SIZE[1.1]"): "broken-mime",
    ("stalwart-mail-parser/malformed/004.eml", "BINARY[1.1]"): "broken-mime",
    ("stalwart-mail-parser/malformed/004.eml", "BODYSTRUCTURE"): "broken-mime",
    ("stalwart-mail-parser/malformed/004.eml", "BODY[1.1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/004.eml", "BODY[1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/004.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/005.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/006.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/007.eml", "BINARY[2]"): "broken-mime",
    ("stalwart-mail-parser/malformed/007.eml", "BINARY[3]"): "broken-mime",
    ("stalwart-mail-parser/malformed/007.eml", "BODYSTRUCTURE"): "broken-mime",
    ("stalwart-mail-parser/malformed/007.eml", "BODY[1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/007.eml", "BODY[2.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/007.eml", "BODY[3.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/007.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/008.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/009.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/010.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/011.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/012.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/013.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/014.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/016.eml", "BINARY.SIZE[1.1.2]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BINARY.SIZE[1.1.3]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BINARY.SIZE[1.1.4]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BINARY[1.1.2]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BINARY[1.1.3]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BINARY[1.1.4]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BODYSTRUCTURE"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BODY[1.1.2.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BODY[1.1.3.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "BODY[1.1.4.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/016.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/017.eml", "BINARY.SIZE[1]"): "broken-mime",
    ("stalwart-mail-parser/malformed/017.eml", "BINARY[1]"): "broken-mime",
    ("stalwart-mail-parser/malformed/017.eml", "BODYSTRUCTURE"): "broken-mime",
    ("stalwart-mail-parser/malformed/017.eml", "BODY[1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/017.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/018.eml", "BINARY.SIZE[1]"): "lenient-cte",
    ("stalwart-mail-parser/malformed/018.eml", "BINARY[1]"): "lenient-cte",
    ("stalwart-mail-parser/malformed/018.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/019.eml", "BODY[4.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/019.eml", "BODY[5.2.1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/019.eml", "BODY[5.2.2.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/019.eml", "ENVELOPE"): "envelope",
    ("stalwart-mail-parser/malformed/019.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/020.eml", "BODY[1.2.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/021.eml", "BODY[1.2.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/022.eml", "BODY[2.1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/malformed/022.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/malformed/COPYING.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY.SIZE[1]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY.SIZE[2]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY.SIZE[3.1]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY.SIZE[3.2]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY.SIZE[4]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY.SIZE[5.1]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY[1]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY[2]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY[3.1]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY[3.2]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY[4]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/000.eml", "BINARY[5.1]"): "lenient-cte",
    ("stalwart-mail-parser/rfc/001.eml", "BODYSTRUCTURE"): "broken-mime",
    ("stalwart-mail-parser/rfc/001.eml", "SEARCH NOT FROM @"): "broken-header",
    ("stalwart-mail-parser/rfc/001.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/rfc/002.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/rfc/004.eml", "SEARCH NOT FROM @"): "broken-header",
    ("stalwart-mail-parser/rfc/005.eml", "SEARCH HEADER Subject 'ß'"): "casemap",
    ("stalwart-mail-parser/rfc/006.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/rfc/007.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/rfc/008.eml", "BODY[2.1.MIME]"): "broken-mime",
    ("stalwart-mail-parser/rfc/008.eml", "SEARCH SENTBEFORE 1-Jan-2005"): "sent-date",
    ("stalwart-mail-parser/rfc/009.eml", "BODYSTRUCTURE"): "broken-mime",
}


def test_real_world_messages_answer_as_dovecot_does(imap, capsys):
    corpus = messages()
    assert len(corpus) >= 200
    with dovecot.running("alice", "secret") as reference:
        theirs = Side(reference.port, "alice", corpus)
        ours = Side(imap["ports"]["imap"], "alice@example.org", corpus)
        agree, differ, unanswered, inconsistent = compare(ours, theirs, corpus)
        theirs.client.logout()
        ours.client.logout()
    total = agree + len(differ)
    with capsys.disabled():
        print(
            f"\nDovecot differential: {len(corpus)} messages, {total} message x item pairs, "
            f"{agree} agree ({100 * agree / total:.2f}%), {len(differ)} differ "
            f"({sum(1 for k in differ if k in KNOWN)} listed); Dovecot dropped the session "
            f"instead of answering {len(unanswered)} "
            f"(in {sorted({name for name, _ in unanswered})}); {len(inconsistent)} BINARY.SIZE "
            f"where Dovecot's size is not its own BINARY[]'s length and ours is"
        )
    unexpected = {k: v for k, v in differ.items() if k not in KNOWN}
    if report := os.environ.get("MAILHOST_DIFFERENTIAL_REPORT"):
        Path(report).write_text(
            "\n".join(f"{k}: ours={v[0]!r} dovecot={v[1]!r}" for k, v in sorted(differ.items()))
        )
    assert not unexpected, "\n".join(
        f"{k}: ours={v[0]!r} dovecot={v[1]!r}" for k, v in sorted(unexpected.items())[:40]
    )
    stale = [k for k in KNOWN if k not in differ]
    assert not stale, f"listed differences that no longer differ: {stale}"

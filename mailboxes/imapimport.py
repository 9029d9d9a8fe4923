"""importimap: every folder of another IMAP server's account copied into a mailbox.

The source is read with imaplib (implicit TLS for imaps://, STARTTLS for imap://, RFC 8314) and
each folder handed to mailboxes.services.mailbox_import_folders as an ArchivedFolder, so the
storing, the special-use mapping and the skipping of messages already copied (Message-ID,
internal date, size) are importmailbox's. Per folder one UID FETCH brings every message's
UID, FLAGS, INTERNALDATE, RFC822.SIZE and Message-ID field; a message's bytes (BODY.PEEK[], the
source's \\Seen left alone) are fetched only when it is not already here, so a second run
copies and downloads nothing, and a run that stopped resumes where it was.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from mailboxes import selectors, services
from mailboxes.archive import ArchivedFolder
from mailboxes.exceptions import InvalidValue
from mailboxes.models import HIERARCHY_DELIMITER, Mailbox, SpecialUse
from protocols.imap import utf7

DEFAULT_PORTS = {"imaps": 993, "imap": 143}
TIMEOUT = 120  # seconds for one network operation on the source
SPECIAL_USES = {value.lower(): value for value in SpecialUse.values if value}

# RFC 9051 7.3.1: ( attributes ) delimiter name
_LIST_LINE = re.compile(rb'\((?P<attrs>[^)]*)\) (?P<delim>"(?:\\.|[^"\\])*"|NIL) (?P<name>.*)\Z')
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


@dataclass(frozen=True)
class Source:
    scheme: str  # imaps or imap (STARTTLS)
    user: str
    host: str
    port: int


def parse_source(url: str) -> Source:
    """imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT] (USER %-encoded where it holds @)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise InvalidValue(f"source {url!r}: imaps:// or imap:// (with STARTTLS)")
    if not parts.username or not parts.hostname or parts.password is not None:
        raise InvalidValue(f"source {url!r}: USER@HOST, the password comes from stdin")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise InvalidValue(f"source {url!r}: {exc}") from None
    return Source(parts.scheme, unquote(parts.username), parts.hostname, port)


def tls_context(*, cafile: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cafile)


def connect(source: Source, password: str, context: ssl.SSLContext) -> imaplib.IMAP4:
    """A logged-in connection, never sending the password in clear."""
    if source.scheme == "imaps":
        conn = imaplib.IMAP4_SSL(source.host, source.port, ssl_context=context, timeout=TIMEOUT)
    else:
        conn = imaplib.IMAP4(source.host, source.port, timeout=TIMEOUT)
        try:
            conn.starttls(context)
        except BaseException:
            conn.shutdown()
            raise
    try:
        conn.login(source.user, password)
    except BaseException:
        conn.shutdown()
        raise
    return conn


def _quote(name: bytes) -> str:
    return '"' + name.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(text: bytes) -> bytes:
    if text.startswith(b'"') and text.endswith(b'"') and len(text) >= 2:
        return re.sub(rb"\\(.)", rb"\1", text[1:-1])
    return text


@dataclass(frozen=True)
class SourceFolder:
    wire_name: bytes  # as the source spells it (modified UTF-7, its delimiter)
    name: str  # ours: decoded, with our delimiter
    special_use: str


def list_folders(conn: imaplib.IMAP4) -> list[SourceFolder]:
    """Every selectable folder, with its RFC 6154 special use (LIST's attributes)."""
    typ, data = conn.list()
    if typ != "OK":
        raise InvalidValue(f"LIST failed: {data!r}")
    folders = []
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):  # the name sent as a literal
            line, wire = item[0].rsplit(b" ", 1)[0] + b" x", item[1]
        else:
            line, wire = item, None
        match = _LIST_LINE.match(line)
        if match is None:
            raise InvalidValue(f"unreadable LIST response {item!r}")
        attrs = match["attrs"].lower().split()
        if b"\\noselect" in attrs or b"\\nonexistent" in attrs:
            continue
        wire = wire if wire is not None else _unquote(match["name"])
        delimiter = _unquote(match["delim"]).decode() if match["delim"] != b"NIL" else ""
        name = utf7.decode(wire.decode("ascii"))
        if delimiter and delimiter != HIERARCHY_DELIMITER:
            name = name.replace(delimiter, HIERARCHY_DELIMITER)
        special = [SPECIAL_USES[a.decode()] for a in attrs if a.decode() in SPECIAL_USES]
        folders.append(SourceFolder(wire, name, special[0] if special else ""))
    return folders


class RemoteMessage:
    """One source message as mailbox_import_folders takes it: the bytes fetched on first use."""

    def __init__(
        self, conn: imaplib.IMAP4, uid: int, flags: list[str], internal_date, size, header
    ):  # noqa: ANN001
        self.conn = conn
        self.uid = uid
        self.flags = flags
        self.internal_date = internal_date
        self.size = size
        self.header = header

    def fingerprint(self, internal_date: datetime) -> tuple[str, int, int]:
        return selectors.message_fingerprint(self.header, internal_date, self.size)

    @property
    def raw(self) -> bytes:
        typ, data = self.conn.uid("FETCH", str(self.uid), "(BODY.PEEK[])")
        literals = [item[1] for item in data if isinstance(item, tuple)]
        if typ != "OK" or not literals:
            raise InvalidValue(f"could not fetch UID {self.uid}: {typ} {data!r}")
        return literals[0]


def parse_internaldate(text: bytes) -> datetime:
    # RFC 9051 9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", the day space-padded
    return datetime.strptime(text.decode().strip(), "%d-%b-%Y %H:%M:%S %z")


def folder_messages(conn: imaplib.IMAP4, folder: SourceFolder) -> Iterator[RemoteMessage]:
    typ, data = conn.select(_quote(folder.wire_name), readonly=True)
    if typ != "OK":
        raise InvalidValue(f"cannot select {folder.name}: {data!r}")
    if int(data[0] or 0) == 0:
        return
    typ, data = conn.uid(
        "FETCH",
        "1:*",
        "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
    )
    if typ != "OK":
        raise InvalidValue(f"FETCH failed in {folder.name}: {data!r}")
    records: list[tuple[bytes, bytes]] = []  # (response text around the literal, literal)
    for item in data:
        if isinstance(item, tuple):
            records.append((item[0], item[1]))
        elif item and records:  # what follows the literal: ")" or more items
            records[-1] = (records[-1][0] + b" " + item, records[-1][1])
    for text, header in sorted(records, key=lambda r: int(_UID.search(r[0])[1])):
        flags_match = _FLAGS.search(text)
        flags = flags_match[1].decode().split() if flags_match else []
        yield RemoteMessage(
            conn,
            int(_UID.search(text)[1]),
            [flag for flag in flags if flag.lower() != "\\recent"],
            parse_internaldate(_INTERNALDATE.search(text)[1]),
            int(_SIZE.search(text)[1]),
            header,
        )


def mailbox_import_imap(
    *, mailbox: Mailbox, source: Source, password: str, context: ssl.SSLContext
) -> services.ImportResult:
    conn = connect(source, password, context)
    try:
        folders = [
            ArchivedFolder(f.name, folder_messages(conn, f), f.special_use)
            for f in list_folders(conn)
        ]
        return services.mailbox_import_folders(mailbox=mailbox, folders=folders)
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            conn.shutdown()

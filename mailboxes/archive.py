"""Mailbox archives: mbox (mboxrd) and Maildir++ read and written byte for byte.

exportmailbox writes them (`mailbox_export`, reading through the selectors); importmailbox
reads them (`read_archive`) and stores each message through mailboxes.services.mailbox_import.
The stdlib `mailbox` module rewrites line endings, so the bytes are handled here.

mbox: one file per folder, `INBOX`, `Sent`, a subfolder `a/b` as `a.sbd/b` (Thunderbird's
layout). Each message is `From <sender> <asctime UTC internal date>` LF, then the export's flag
headers (EXPORT_HEADERS), then the stored bytes with mboxrd escaping (a line matching
`>*From ` gets one more `>`), then one LF. Import undoes exactly that.

Maildir++: INBOX is the root (cur/ new/ tmp/), folder `a/b` is `.a.b/` (names in modified
UTF-7, `.` and `~` in a name escaped `~2e` `~7e` as Dovecot's maildir_name_escape_char=~),
flags in the `:2,` info (D F R S T), keywords as letters a-z indexed by the folder's
dovecot-keywords file, the internal date as the file's mtime.
"""

from __future__ import annotations

import calendar
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailboxes import selectors
from mailboxes.exceptions import InvalidValue
from mailboxes.flags import SYSTEM as SYSTEM_FLAGS
from mailboxes.models import HIERARCHY_DELIMITER, Mailbox
from protocols.imap import utf7

# Message column -> mbox header letter (Status: R and O; X-Status: the rest, as mutt and
# Dovecot write them) and Maildir info letter.
MBOX_STATUS = {"seen": "R"}
MBOX_X_STATUS = {"answered": "A", "flagged": "F", "draft": "T", "deleted": "D"}
MAILDIR_INFO = {"draft": "D", "flagged": "F", "answered": "R", "seen": "S", "deleted": "T"}
FLAG_NAMES = {flag.column: flag.imap for flag in SYSTEM_FLAGS}

# The headers mbox export puts at the top of each message, in this order, always all three
# (import removes them when a message starts with exactly these; README lists them).
EXPORT_HEADERS = ("Status", "X-Status", "X-Keywords")
_EXPORT_BLOCK = re.compile(
    rb"\AStatus: ([A-Z]*)(\r?\n)X-Status: ([A-Z]*)\2X-Keywords: ([^\r\n]*)\2"
)
_FROM_LINE = re.compile(rb"^>*From ")
_ESCAPED_FROM = re.compile(rb"^>+From ")
_ASCTIME = re.compile(
    r"([A-Z][a-z]{2}) ([A-Z][a-z]{2}) +(\d{1,2}) (\d{1,2}):(\d{2})(?::(\d{2}))? (\d{4})"
)
KEYWORDS_FILE = "dovecot-keywords"
MAILDIR_KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class ArchivedMessage:
    raw: bytes
    flags: list[str]
    internal_date: datetime | None

    def fingerprint(self, internal_date: datetime) -> tuple[str, int, int]:
        return selectors.message_fingerprint(self.raw, internal_date, len(self.raw))


@dataclass
class ArchivedFolder:
    name: str
    messages: Iterator[ArchivedMessage]
    special_use: str = ""  # a SpecialUse value: stored in our folder of that use


@dataclass
class ExportResult:
    folders: int = 0
    messages: int = 0
    warnings: list[str] = field(default_factory=list)


# --- Export --------------------------------------------------------------------------------


def mailbox_export(*, mailbox: Mailbox, fmt: str, directory: str) -> ExportResult:
    """Write every folder of the mailbox under `directory` (made if absent, must be empty)."""
    if fmt not in ("mbox", "maildir"):
        raise InvalidValue(f"unknown format {fmt!r}: mbox or maildir")
    os.makedirs(directory, exist_ok=True)
    if os.listdir(directory):
        raise InvalidValue(f"{directory} is not empty")
    result = ExportResult()
    for folder in selectors.folders_of(mailbox):
        messages = selectors.messages_in(folder).select_related("blob")
        if fmt == "mbox":
            _mbox_write(os.path.join(directory, mbox_path(folder.name)), messages)
        else:
            _maildir_write(directory, folder, messages, result)
        result.folders += 1
        result.messages += messages.count()
    return result


def mbox_path(name: str) -> str:
    """`a/b` -> `a.sbd/b` (a folder's file and its children's directory side by side)."""
    parts = name.split(HIERARCHY_DELIMITER)
    return os.path.join(*[p + ".sbd" for p in parts[:-1]], parts[-1])


def mbox_escape(raw: bytes) -> bytes:
    return b"".join(
        b">" + line if _FROM_LINE.match(line) else line for line in raw.splitlines(keepends=True)
    )


def mbox_unescape(raw: bytes) -> bytes:
    return b"".join(
        line[1:] if _ESCAPED_FROM.match(line) else line for line in raw.splitlines(keepends=True)
    )


def _mbox_write(path: str, messages) -> None:  # noqa: ANN001 - a Message queryset
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as fh:
        for message in messages.iterator(chunk_size=200):
            raw = selectors.blob_read(message.blob)
            date = message.internal_date.astimezone(UTC)
            sender = message.from_address if re.fullmatch(r"\S+@\S+", message.from_address) else ""
            fh.write(f"From {sender or 'MAILER-DAEMON'} {date:%a %b %e %H:%M:%S %Y}\n".encode())
            eol = b"\r\n" if raw.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
            status = "".join(v for k, v in MBOX_STATUS.items() if getattr(message, k)) + "O"
            x_status = "".join(v for k, v in MBOX_X_STATUS.items() if getattr(message, k))
            fh.write(
                b"Status: %s%sX-Status: %s%sX-Keywords: %s%s"
                % (status.encode(), eol, x_status.encode(), eol, message.keywords.encode(), eol)
            )
            fh.write(mbox_escape(raw))
            fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def maildir_name(name: str) -> str:
    """The Maildir++ directory of a folder: `` for INBOX, `.Sent`, `.a.b` for `a/b`."""
    if name == "INBOX":
        return ""
    parts = [utf7.encode(p.replace("~", "~7e").replace(".", "~2e")) for p in name.split("/")]
    return "." + ".".join(parts)


def _maildir_write(directory: str, folder, messages, result: ExportResult) -> None:  # noqa: ANN001
    root = os.path.join(directory, maildir_name(folder.name))
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    if folder.name != "INBOX":
        open(os.path.join(root, "maildirfolder"), "wb").close()
    keywords = selectors.folder_keywords(folder.id)
    letters = {k.lower(): MAILDIR_KEYWORD_LETTERS[i] for i, k in enumerate(keywords[:26])}
    if len(keywords) > 26:
        result.warnings.append(
            f"{folder.name}: Maildir keeps 26 keywords a folder, dropped: {' '.join(keywords[26:])}"
        )
    if keywords:
        with open(os.path.join(root, KEYWORDS_FILE), "w", encoding="utf-8") as fh:
            fh.writelines(f"{i} {k}\n" for i, k in enumerate(keywords[:26]))
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    for message in messages.iterator(chunk_size=200):
        raw = selectors.blob_read(message.blob)
        stamp = message.internal_date.timestamp()
        micros = (message.internal_date - _EPOCH) // timedelta(microseconds=1)
        info = "".join(
            v for k, v in sorted(MAILDIR_INFO.items(), key=lambda i: i[1]) if getattr(message, k)
        )
        info += "".join(
            sorted(letters[k.lower()] for k in message.keywords.split() if k.lower() in letters)
        )
        base = f"{int(stamp)}.M{message.uid}P{os.getpid()}.{host},S={len(raw)}:2,{info}"
        path = os.path.join(root, "cur", base)
        with open(path, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.utime(path, ns=(micros * 1000, micros * 1000))


# --- Import --------------------------------------------------------------------------------


def read_archive(path: str) -> list[ArchivedFolder]:
    """The folders of an mbox file, a directory of mbox files, or a Maildir++ tree."""
    if os.path.isfile(path):
        return [ArchivedFolder("INBOX", _mbox_read(path))]
    if not os.path.isdir(path):
        raise InvalidValue(f"{path} is neither a file nor a directory")
    if any(os.path.isdir(os.path.join(path, sub)) for sub in ("cur", "new")):
        return _maildir_folders(path)
    folders = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for filename in sorted(filenames):
            full = os.path.join(dirpath, filename)
            with open(full, "rb") as fh:
                if fh.read(5) not in (b"From ", b""):
                    continue  # not an mbox (an index file, a .msf, ...)
            relative = os.path.relpath(full, path).split(os.sep)
            parts = [p[: -len(".sbd")] if p.endswith(".sbd") else p for p in relative[:-1]]
            parts.append(relative[-1][: -len(".mbox")] if filename.endswith(".mbox") else filename)
            folders.append(ArchivedFolder("/".join(parts), _mbox_read(full)))
    return folders


def _mbox_read(path: str) -> Iterator[ArchivedMessage]:
    """The messages of an mbox file, read line by line (one message in memory at a time)."""
    from_line: str | None = None
    lines: list[bytes] = []

    def finish() -> ArchivedMessage:
        body = b"".join(lines)
        if body.endswith(b"\n"):
            body = body[:-1]  # the separator the writer adds after each message
        return _mbox_message(from_line or "", mbox_unescape(body))

    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b"From "):
                if from_line is not None:
                    yield finish()
                from_line, lines = line.rstrip(b"\r\n").decode("latin-1"), []
            elif from_line is not None:
                lines.append(line)
    if from_line is not None:
        yield finish()


def _mbox_message(from_line: str, raw: bytes) -> ArchivedMessage:
    match = _EXPORT_BLOCK.match(raw)
    if match:  # ours: remove the block to give back the stored bytes
        status, x_status, keywords = (g.decode("utf-8", "replace") for g in match.group(1, 3, 4))
        raw = raw[match.end() :]
    else:  # another program's: read the headers where they are, keep the bytes
        header = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]

        def value(name: bytes) -> str:
            found = re.search(rb"(?im)^" + name + rb":[ \t]*([^\r\n]*)", header)
            return found.group(1).decode("utf-8", "replace") if found else ""

        status, x_status, keywords = value(b"Status"), value(b"X-Status"), value(b"X-Keywords")
    flags = [FLAG_NAMES[k] for k, v in MBOX_STATUS.items() if v in status]
    flags += [FLAG_NAMES[k] for k, v in MBOX_X_STATUS.items() if v in x_status]
    flags += [k for k in re.split(r"[\s,]+", keywords) if k]
    return ArchivedMessage(raw, flags, _asctime(from_line))


def _asctime(from_line: str) -> datetime | None:
    match = _ASCTIME.search(from_line)
    if not match:
        return None
    wday, month, day, hour, minute, second, year = match.groups()
    try:
        parsed = time.strptime(
            f"{month} {day} {hour}:{minute}:{second or '00'} {year}", "%b %d %H:%M:%S %Y"
        )
    except ValueError:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def _maildir_folders(path: str) -> list[ArchivedFolder]:
    folders = [ArchivedFolder("INBOX", _maildir_read(path))]
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if entry.startswith(".") and entry not in (".", "..") and os.path.isdir(full):
            if any(os.path.isdir(os.path.join(full, sub)) for sub in ("cur", "new")):
                folders.append(ArchivedFolder(_maildir_folder_name(entry), _maildir_read(full)))
    return folders


def _maildir_folder_name(entry: str) -> str:
    parts = []
    for part in entry[1:].split("."):
        name = utf7.decode(part)
        parts.append(re.sub(r"~([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), name))
    return "/".join(parts)


def _maildir_keywords(root: str) -> dict[str, str]:
    letters: dict[str, str] = {}
    try:
        with open(os.path.join(root, KEYWORDS_FILE), encoding="utf-8") as fh:
            for line in fh:
                index, _, name = line.strip().partition(" ")
                if index.isdigit() and int(index) < 26 and name:
                    letters[MAILDIR_KEYWORD_LETTERS[int(index)]] = name
    except FileNotFoundError:
        pass
    return letters


def _maildir_read(root: str) -> Iterator[ArchivedMessage]:
    keywords = _maildir_keywords(root)
    letters = {v: FLAG_NAMES[k] for k, v in MAILDIR_INFO.items()}
    files = []
    for sub in ("new", "cur"):
        directory = os.path.join(root, sub)
        if os.path.isdir(directory):
            files += [
                os.path.join(directory, f) for f in os.listdir(directory) if not f.startswith(".")
            ]
    files.sort(key=lambda f: (os.stat(f).st_mtime_ns, os.path.basename(f)))
    for full in files:
        _, _, info = os.path.basename(full).partition(":2,")
        flags = [letters[c] for c in info if c in letters]
        flags += [keywords[c] for c in info if c in keywords]
        with open(full, "rb") as fh:
            raw = fh.read()
        date = _EPOCH + timedelta(microseconds=os.stat(full).st_mtime_ns // 1000)
        yield ArchivedMessage(raw, flags, date)

"""The maildrop of one POP3 session: INBOX as it was at login, and the bytes on the wire.

RFC 1939 fixes the message list and numbering for the whole session, so `open_maildrop`
takes a snapshot of INBOX at login; mail arriving later shows in the next session. Sizes in
STAT and LIST are the octets RETR sends: the message with CRLF line endings, ending in CRLF,
before byte-stuffing (RFC 1939 11). They are computed once per message from its immutable
bytes and kept in Message.mime_cache["pop3"].
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from mailboxes import selectors, services
from protocols.pop3 import lease

if TYPE_CHECKING:
    from mailboxes.models import Folder, Mailbox

CACHE_KEY = "pop3"
CACHE_VERSION = 1


def wire_form(raw: bytes) -> bytes:
    """The message as POP3 sends it, before byte-stuffing: CRLF line endings, a final CRLF.

    A bare LF becomes CRLF; a CR not followed by LF is left alone (it is not a line end).
    """
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def byte_stuff(data: bytes) -> bytes:
    """RFC 1939 3: a line starting with "." gets one more; `data` is in wire form."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed


def multiline_body(data: bytes) -> bytes:
    """Wire-form bytes as the body of a multi-line reply, with its terminating line."""
    return byte_stuff(data) + b".\r\n"


def top_of(data: bytes, lines: int) -> bytes:
    """RFC 1939 7 TOP: the header, the blank line, then at most `lines` lines of the body."""
    if data.startswith(b"\r\n"):
        header_end = 2
    else:
        index = data.find(b"\r\n\r\n")
        if index < 0:
            return data  # no body: the whole message is header
        header_end = index + 4
    body = data[header_end:]
    cut = 0
    for _ in range(lines):
        next_end = body.find(b"\r\n", cut)
        if next_end < 0:
            cut = len(body)
            break
        cut = next_end + 2
    return data[:header_end] + body[:cut]


# --- The same, a chunk at a time (messages of MAILHOST_BLOB_STREAM_MIN bytes and more) ---


def wire_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """wire_form over the message's bytes in chunks: a CR that ends a chunk waits for the
    next one (it may be a CRLF's); what comes out joins into wire_form(b"".join(chunks))."""
    pending = b""
    last = b""
    for chunk in chunks:
        data = pending + chunk
        pending = b""
        if data.endswith(b"\r"):
            data, pending = data[:-1], b"\r"
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if data:
            last = (last + data)[-2:]
            yield data
    data = pending
    if (last + data) and not (last + data).endswith(b"\r\n"):
        data += b"\r\n"
    if data:
        yield data


def stuffed_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """byte_stuff over wire-form chunks (a chunk never ends inside a CRLF: wire_chunks)."""
    line_start = True
    for chunk in chunks:
        if not chunk:
            continue
        out = chunk.replace(b"\r\n.", b"\r\n..")
        if line_start and out.startswith(b"."):
            out = b"." + out
        line_start = out.endswith(b"\r\n")
        yield out


def top_chunks(chunks: Iterable[bytes], lines: int) -> Iterator[bytes]:
    """top_of over wire-form chunks: they are passed on up to the end of the header and
    `lines` lines of the body, and the rest is not read."""
    tail = b""  # the header's last bytes so far: its blank line may straddle two chunks
    in_header, first = True, True
    for chunk in chunks:
        if not chunk:
            continue
        body = b""
        if in_header:
            if first and chunk.startswith(b"\r\n"):
                end = 2  # top_of: a message that starts with its blank line
            else:
                found = (tail + chunk).find(b"\r\n\r\n")
                end = -1 if found < 0 else found + 4 - len(tail)
            first = False
            if end < 0:
                tail = (tail + chunk)[-3:]
                yield chunk
                continue
            in_header = False
            yield chunk[:end]
            body = chunk[end:]
        else:
            body = chunk
        cut = 0
        while lines and cut < len(body):
            next_end = body.find(b"\r\n", cut)
            if next_end < 0:
                cut = len(body)
                break
            cut = next_end + 2
            lines -= 1
        if cut:
            yield body[:cut]
        if not lines:
            return


def wire_size(chunks: Iterable[bytes]) -> int:
    return sum(len(chunk) for chunk in wire_chunks(chunks))


def unique_id(uidvalidity: int, uid: int) -> str:
    """RFC 1939 7 UIDL: stable for the message's life; Dovecot's default form %08Xu%08Xv,
    so clients moving from Dovecot do not download everything again."""
    return f"{uid:08X}{uidvalidity:08X}"


@dataclass(frozen=True)
class Entry:
    uid: int
    size: int  # wire-form octets
    blob_name: str
    unique_id: str
    stored_size: int = 0  # the blob's octets: at MAILHOST_BLOB_STREAM_MIN and up, streamed


@dataclass
class Maildrop:
    mailbox_id: int
    folder: Folder
    entries: list[Entry]
    deleted: set[int] = field(default_factory=set)  # message numbers marked by DELE

    def get(self, number: int) -> Entry | None:
        if 1 <= number <= len(self.entries):
            return self.entries[number - 1]
        return None

    def live(self) -> list[tuple[int, Entry]]:
        return [(n, e) for n, e in enumerate(self.entries, 1) if n not in self.deleted]

    def totals(self) -> tuple[int, int]:
        live = self.live()
        return len(live), sum(e.size for _, e in live)

    def deleted_uids(self) -> list[int]:
        return [self.entries[n - 1].uid for n in sorted(self.deleted)]


class MaildropUnavailable(Exception):
    pass


def open_maildrop(mailbox: Mailbox) -> Maildrop:
    """Snapshot INBOX (sync: call from a worker thread). Computes missing sizes once."""
    folder = selectors.folder_get(mailbox, "INBOX")
    if folder is None:
        raise MaildropUnavailable(f"mailbox {mailbox.pk} has no INBOX")
    # Only POP3's own key is fetched: other protocols' caches (IMAP BODYSTRUCTURE...) can be
    # large and are not parsed here.
    rows = list(
        selectors.messages_in(folder).values_list(
            "id", "uid", "blob__name", "blob__size", f"mime_cache__{CACHE_KEY}"
        )
    )
    missing: dict[int, object] = {}
    entries = []
    for message_id, uid, blob_name, stored_size, cached in rows:
        if isinstance(cached, dict) and cached.get("v") == CACHE_VERSION:
            size = cached["size"]
        else:
            size = _wire_size_of(blob_name, stored_size)
            missing[message_id] = {"v": CACHE_VERSION, "size": size}
        entries.append(Entry(uid, size, blob_name, unique_id(folder.uidvalidity, uid), stored_size))
    if missing:
        services.message_caches_put(key=CACHE_KEY, values=missing)
    return Maildrop(mailbox_id=mailbox.pk, folder=folder, entries=entries)


def _wire_size_of(blob_name: str, stored_size: int) -> int:
    """A message's wire-form size; a large one's counted a chunk at a time (once: cached)."""
    if stored_size < settings.MAILHOST_BLOB_STREAM_MIN:
        return len(wire_form(selectors.blob_read(blob_name)))
    stream = selectors.blob_stream(blob_name)
    try:
        return wire_size(stream)
    finally:
        stream.close()


def read_wire_form(entry: Entry) -> bytes:
    """The message's bytes in wire form (sync). The blob outlives a concurrent IMAP expunge
    only until the transaction commits, so a vanished blob raises FileNotFoundError."""
    return wire_form(selectors.blob_read(entry.blob_name))


def streams(entry: Entry) -> bool:
    """Whether RETR and TOP send this message a chunk at a time (open_wire_stream)."""
    return entry.stored_size >= settings.MAILHOST_BLOB_STREAM_MIN


def open_wire_stream(entry: Entry, top: int | None = None) -> WireStream:
    """The message byte-stuffed in wire form (its first `top` body lines for TOP), a
    MAILHOST_BLOB_STREAM_CHUNK of the store at a time (sync; take the chunks in a worker
    thread too). Opened now: FileNotFoundError now when its bytes are gone."""
    raw = selectors.blob_stream(entry.blob_name)
    wire = wire_chunks(raw)
    return WireStream(stuffed_chunks(wire if top is None else top_chunks(wire, top)), raw)


class WireStream:
    """open_wire_stream's chunks; close() closes the store's file or GET, done or not."""

    def __init__(self, chunks: Iterator[bytes], source) -> None:  # noqa: ANN001
        self.chunks, self.source = chunks, source

    def __iter__(self) -> WireStream:
        return self

    def __next__(self) -> bytes:
        return next(self.chunks)

    def close(self) -> None:
        self.source.close()


def remove_deleted(maildrop: Maildrop) -> list[int]:
    """UPDATE state (sync): remove every message marked by DELE, atomically."""
    uids = maildrop.deleted_uids()
    if not uids:
        return []
    return services.messages_delete(folder=maildrop.folder, uids=uids)


def update(maildrop: Maildrop, retrieved: set[int], *, holder: str) -> list[int]:
    """The UPDATE state (sync). Messages downloaded with RETR and kept become \\Seen (as in
    Dovecot, so IMAP shows them read); then those marked by DELE go, in one transaction that
    commits only while `holder` still holds the maildrop's lease (lease.LeaseLost otherwise:
    RFC 1939 8, a session that lost the maildrop to a newer one changes nothing)."""
    kept = [maildrop.entries[n - 1].uid for n in sorted(retrieved - maildrop.deleted)]
    with lease.held(maildrop.mailbox_id, holder):
        if kept:
            services.messages_mark_read(folder=maildrop.folder, uids=kept)
        return remove_deleted(maildrop)

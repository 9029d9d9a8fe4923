"""The maildrop of one POP3 session: INBOX as it was at login, and the bytes on the wire.

RFC 1939 fixes the message list and numbering for the whole session, so `open_maildrop`
takes a snapshot of INBOX at login; mail arriving later shows in the next session. Sizes in
STAT and LIST are the octets RETR sends: the message with CRLF line endings, ending in CRLF,
before byte-stuffing (RFC 1939 11). They are computed once per message from its immutable
bytes and kept in Message.mime_cache["pop3"].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
            "id", "uid", "blob__name", f"mime_cache__{CACHE_KEY}"
        )
    )
    missing: dict[int, object] = {}
    entries = []
    for message_id, uid, blob_name, cached in rows:
        if isinstance(cached, dict) and cached.get("v") == CACHE_VERSION:
            size = cached["size"]
        else:
            size = len(wire_form(selectors.blob_read(blob_name)))
            missing[message_id] = {"v": CACHE_VERSION, "size": size}
        entries.append(Entry(uid, size, blob_name, unique_id(folder.uidvalidity, uid)))
    if missing:
        services.message_caches_put(key=CACHE_KEY, values=missing)
    return Maildrop(mailbox_id=mailbox.pk, folder=folder, entries=entries)


def read_wire_form(entry: Entry) -> bytes:
    """The message's bytes in wire form (sync). The blob outlives a concurrent IMAP expunge
    only until the transaction commits, so a vanished blob raises FileNotFoundError."""
    return wire_form(selectors.blob_read(entry.blob_name))


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

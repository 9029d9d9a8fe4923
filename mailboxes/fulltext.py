"""Full-text search: each blob's searchable text, kept in BlobText and indexed for substring
search (SQLite FTS5 with the trigram tokenizer; PostgreSQL pg_trgm GIN indexes).

The text is what IMAP SEARCH matches (RFC 9051 6.4.4: substrings, case-insensitively): the
header fields with encoded words decoded, and the text/* parts with their transfer encoding
and charset undone, each case-folded with white space runs as one space (`fold`). Because the
stored text is already folded, a substring query on it is exact, not a word-based
approximation: SQLite's trigram MATCH of a quoted phrase, or LIKE '%needle%', finds exactly the
blobs whose text contains the needle.

Indexing is off the delivery path (a 250 never waits for it): the Indexer thread of the
delivery workers indexes what delivery reports (change events) and sweeps for anything left
every MAILHOST_FTS_INTERVAL seconds. A search treats blobs not yet indexed (or whose text was
longer than MAILHOST_FTS_MAX_TEXT) the old way, reading their bytes, so results never depend on
the indexer having caught up. `manage.py reindex` rebuilds it all.
"""

from __future__ import annotations

import codecs
import logging
import threading

from django.conf import settings
from django.db import connection, connections
from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import RawSQL

from mailboxes import headers as header_cache
from mailboxes.models import Blob, BlobText, Message

logger = logging.getLogger(__name__)

TABLE = "mailboxes_blobtext"
FTS_TABLE = "mailboxes_blobtext_fts"
TRIGRAM = 3  # SQLite's trigram tokenizer matches needles of at least three characters


def fold(text: str) -> str:
    """The form both the stored text and the needle take: case-folded, white space as one."""
    return " ".join(text.casefold().split())


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """(lower-case name, value as text) of each header field of the message, in order."""
    from protocols.imap import mime  # the message parser IMAP uses (FETCH, BODYSTRUCTURE)

    return [
        (name, header_cache.header_text(value.decode("utf-8", "surrogateescape")))
        for name, value in (
            (name, mime.field_value(raw, vs, fe))
            for name, _fs, vs, fe in mime.header_fields(raw, 0, mime.split_header(raw, 0, len(raw)))
        )
    ]


def header_text(fields: list[tuple[str, str]]) -> str:
    return fold(" ".join(f"{name}: {_words(value)}" for name, value in fields))


def body_text(raw: bytes) -> str:
    from protocols.imap import mime

    tree = mime.parse(raw, render=False)
    pieces = []
    for part, charset in mime.text_parts(raw, tree):
        try:
            data = mime.decode_cte(raw[part.bs : part.be], part.cte)
        except mime.UnknownCTE:
            data = raw[part.bs : part.be]
        pieces.append(_decode(data, charset))
    return fold("\n".join(pieces))


def _words(value: str) -> str:
    # decode_words is costly; most values hold no encoded-word (RFC 2047 "=?")
    return header_cache.decode_words(value) if "=?" in value else value


def _decode(data: bytes, charset: bytes) -> str:
    name = charset.decode("ascii", "replace").strip() or "us-ascii"
    try:
        codecs.lookup(name)
    except LookupError:
        name = "utf-8"
    if name.lower() in ("us-ascii", "ascii"):
        name = "utf-8"  # 8-bit bytes in "us-ascii" text are almost always UTF-8
    return data.decode(name, "replace")


# --- Building the index -----------------------------------------------------------------------


def index_blobs(blob_ids: list[int]) -> int:
    """Index these blobs (those not indexed yet); returns how many were added."""
    from mailboxes.selectors import blob_read

    wanted = sorted(
        set(blob_ids)
        - set(BlobText.objects.filter(blob_id__in=blob_ids).values_list("blob_id", flat=True))
    )
    limit = settings.MAILHOST_FTS_MAX_TEXT
    rows = []
    for blob in Blob.objects.filter(pk__in=wanted).only("id", "name", "data"):
        try:
            raw = blob_read(blob)
        except OSError:
            continue  # a missing blob: verifystore reports it; searches read it (and fail) as before
        try:
            header, body = header_text(header_fields(raw)), body_text(raw)
        except Exception:  # a message our parser chokes on stays unindexed: searched the old way
            logger.exception("fts could not index blob=%s", blob.pk)
            continue
        truncated = len(header) + len(body) > limit
        if truncated:
            header, body = "", ""
        rows.append(BlobText(blob_id=blob.pk, header=header, body=body, truncated=truncated))
    BlobText.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def pending(*, after: int = 0, limit: int = 500) -> list[int]:
    """Up to `limit` ids, ascending and above `after`, of blobs that messages use and that
    have no text yet (in blob order, so that a walk over them reads the message index once)."""
    return list(
        Message.objects.filter(blob_id__gt=after)
        .filter(~Exists(BlobText.objects.filter(blob_id=OuterRef("blob_id"))))
        .order_by("blob_id")
        .values_list("blob_id", flat=True)
        .distinct()[:limit]
    )


def index_all(*, batch: int = 500) -> int:
    """Index everything not indexed yet, in one walk up the blob ids; returns how many."""
    total, after = 0, 0
    while ids := pending(after=after, limit=batch):
        total += index_blobs(ids)
        after = ids[-1]
    return total


# --- Searching --------------------------------------------------------------------------------


def _like(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def matching(where: str, needle: str) -> RawSQL:
    """A subquery of the ids of indexed (not truncated) blobs whose text contains `needle`
    (already folded): `where` is "body" (the text parts) or "text" (header and body)."""
    columns = ("body",) if where == "body" else ("header", "body")
    if connection.vendor == "sqlite" and len(needle) >= TRIGRAM:
        phrase = '"' + needle.replace('"', '""') + '"'
        target = "body" if where == "body" else "{header body}"
        sql = (
            f"SELECT f.rowid FROM {FTS_TABLE} f JOIN {TABLE} t ON t.blob_id = f.rowid"
            f" WHERE {FTS_TABLE} MATCH %s AND NOT t.truncated"
        )
        return RawSQL(sql, [f"{target} : {phrase}"])
    test = " OR ".join(f"{c} LIKE %s ESCAPE '\\'" for c in columns)
    sql = f"SELECT blob_id FROM {TABLE} WHERE NOT truncated AND ({test})"
    return RawSQL(sql, [_like(needle)] * len(columns))


def matching_ids(where: str, needle: str) -> set[int]:
    subquery = matching(where, needle)
    with connection.cursor() as cursor:
        cursor.execute(subquery.sql, subquery.params)
        return {row[0] for row in cursor.fetchall()}


def indexed() -> Exists:
    """Whether a Message row's blob has usable indexed text (an annotation)."""
    return Exists(BlobText.objects.filter(blob_id=OuterRef("blob_id"), truncated=False))


def unindexed_q() -> Q:
    return ~Q(indexed())


# --- The indexer thread -------------------------------------------------------------------


class Indexer(threading.Thread):
    """Indexes new mail soon after delivery: woken by change events ("exists"), and every
    MAILHOST_FTS_INTERVAL seconds in any case (mail delivered by another process)."""

    def __init__(self) -> None:
        super().__init__(name="fts-indexer", daemon=True)
        self.stopping = threading.Event()
        self.wanted = threading.Event()
        self._unsubscribe = None

    def start(self) -> None:
        from mailboxes import events

        self._unsubscribe = events.subscribe(self._heard)
        super().start()

    def _heard(self, event) -> None:  # noqa: ANN001
        if event.kind == "exists":
            self.wanted.set()

    # A wake-up walks from a little below the highest blob indexed: new mail has higher ids,
    # give or take the transactions that committed out of order; the periodic walk starts at 0.
    SLACK = 1000

    def run(self) -> None:
        highest, woken = 0, False
        try:
            while not self.stopping.is_set():
                self.wanted.clear()
                after = max(0, highest - self.SLACK) if woken else 0
                try:
                    while not self.stopping.is_set() and (ids := pending(after=after, limit=200)):
                        index_blobs(ids)
                        after = highest = max(highest, ids[-1])
                except Exception:
                    logger.exception("fts indexing failed; trying again later")
                woken = self.wanted.wait(settings.MAILHOST_FTS_INTERVAL)
                self.stopping.wait(0.2)  # let a burst of deliveries gather
        finally:
            connections.close_all()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.stopping.set()
        self.wanted.set()


def reindex() -> int:
    """Empty the index and build it again from the blobs (`manage.py reindex`)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
        if connection.vendor == "sqlite":
            cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
    return index_all()

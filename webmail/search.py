"""Searching a folder or the whole mailbox.

From, To/Cc and Subject are matched against the header fields cached at delivery (one query).
Body text through the full-text index (mailboxes/fulltext.py) over the whole scope; messages not
indexed yet (just delivered, or too long to index) are decoded and scanned, the newest
BODY_SCAN_LIMIT of them, and the result says so when older ones were not searched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Q

from mailboxes import fulltext, selectors
from webmail import mime

if TYPE_CHECKING:
    from mailboxes.models import Folder, Mailbox, Message

RESULT_LIMIT = 200
BODY_SCAN_LIMIT = 500
BODY_SCAN_BYTES = 64 * 1024 * 1024
FIELDS = ("any", "from", "to", "subject", "body")


@dataclass
class SearchResult:
    messages: list[Message] = field(default_factory=list)
    body_scanned: int = 0
    body_incomplete: bool = False  # older messages were not scanned for body text
    truncated: bool = False  # more matches than RESULT_LIMIT


def _header_q(query: str, where: str) -> Q:
    subject = Q(subject__icontains=query)
    sender = Q(from_display__icontains=query) | Q(from_address__icontains=query)
    to = Q(to_display__icontains=query) | Q(cc_display__icontains=query)
    return {"from": sender, "to": to, "subject": subject}.get(where, subject | sender | to)


def search(
    *, mailbox: Mailbox, query: str, folder: Folder | None = None, where: str = "any"
) -> SearchResult:
    query = query.strip()
    result = SearchResult()
    if not query:
        return result
    scope = selectors.messages_to_search_in_mailbox(mailbox, folder=folder)
    found: dict[int, Message] = {}
    if where != "body":
        for message in scope.filter(_header_q(query, where)).order_by("-internal_date", "-id")[
            : RESULT_LIMIT + 1
        ]:
            found[message.pk] = message
    if where in {"any", "body"}:
        needle = fulltext.fold(query)
        ids = fulltext.matching_ids("body", needle)
        # A few matches by id (the blob index finds them), many through the subquery.
        indexed = scope.filter(
            blob_id__in=ids if len(ids) <= 2000 else fulltext.matching("body", needle)
        )
        for message in indexed.order_by("-internal_date", "-id")[: RESULT_LIMIT + 1]:
            found[message.pk] = message
        needle = query.casefold()
        scanned_bytes = 0
        texts: dict[int, str] = {}  # copies of one message share a blob: decode it once
        candidates = (
            scope.filter(fulltext.unindexed_q())
            .exclude(pk__in=list(found))
            .order_by("-internal_date", "-id")
        )
        for message in candidates.select_related("blob")[: BODY_SCAN_LIMIT + 1]:
            if result.body_scanned >= BODY_SCAN_LIMIT or scanned_bytes >= BODY_SCAN_BYTES:
                result.body_incomplete = True
                break
            result.body_scanned += 1
            scanned_bytes += message.size
            text = texts.get(message.blob_id)
            if text is None:
                try:
                    text = mime.searchable_text(selectors.blob_read(message.blob)).casefold()
                except Exception:  # an unreadable message is skipped, not fatal to the search
                    text = ""
                texts[message.blob_id] = text
            if needle in text:
                found[message.pk] = message
    ordered = sorted(found.values(), key=lambda m: (m.internal_date, m.pk), reverse=True)
    result.truncated = len(ordered) > RESULT_LIMIT
    result.messages = ordered[:RESULT_LIMIT]
    return result

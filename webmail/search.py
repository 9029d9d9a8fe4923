"""Searching a folder or the whole mailbox, through the store's search (mailboxes/search.py),
which IMAP SEARCH uses too: the same matching (substrings, Unicode case folding, white space
runs as one) and the same full-text index.

From, To/Cc and Subject are matched against the header fields cached at delivery. Body text
through the full-text index (mailboxes/fulltext.py), and for a word its other inflections as
well (English Snowball stems: "running" finds "runs"; IMAP keeps to substrings); messages not
indexed yet (just delivered, or too long to index) are read, the newest BODY_SCAN_LIMIT of them
(BODY_SCAN_BYTES at most), and the result says so when older ones were not searched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailboxes import search as store_search
from mailboxes.search import HeaderKey, Or, body_stemmed

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


def criteria(query: str, where: str) -> object:
    """What the page's field means, as the store's search criteria."""
    sender = HeaderKey("from", query)
    to = Or(HeaderKey("to", query), HeaderKey("cc", query))
    subject = HeaderKey("subject", query)
    body = body_stemmed(query)  # a word's other inflections too: "runs" for "running"
    if where == "any":
        return Or(Or(subject, sender), Or(to, body))
    return {"from": sender, "to": to, "subject": subject, "body": body}[where]


def search(
    *, mailbox: Mailbox, query: str, folder: Folder | None = None, where: str = "any"
) -> SearchResult:
    query = query.strip()
    if not query:
        return SearchResult()
    messages, found = store_search.mailbox_search(
        mailbox.pk,
        criteria(query, where),
        folder_id=folder.pk if folder is not None else None,
        limit=RESULT_LIMIT + 1,
        read_limit=BODY_SCAN_LIMIT,
        read_bytes=BODY_SCAN_BYTES,
    )
    return SearchResult(
        messages=messages[:RESULT_LIMIT],
        body_scanned=found.read,
        body_incomplete=found.incomplete,
        truncated=len(messages) > RESULT_LIMIT,
    )

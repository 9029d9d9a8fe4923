"""A message's preview: up to 256 characters of its text, for a list view (IMAP's PREVIEW,
RFC 8970, and webmail's message list show the same text).

The first text/plain part, else the first text/html one with its markup taken out, transfer
encoding and charset undone, white space runs as one space (RFC 8970 3: plain text, no line
breaks, at most 256 characters); "" for a message without text.
"""

from __future__ import annotations

import html
import re

from mailboxes import mime

MAX_CHARS = 256  # RFC 8970 3
_SCAN = 64 * 1024  # octets of a text part read for its preview: plenty for 256 characters
_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_TAG = re.compile(r"(?s)<[^>]*>")


def preview(raw: bytes, tree: mime.Part) -> str:
    parts = mime.text_parts(raw, tree)
    chosen = next(((p, c) for p, c in parts if p.sub.lower() == b"plain"), None)
    if chosen is None:
        chosen = next(((p, c) for p, c in parts if p.sub.lower() == b"html"), None)
    if chosen is None:
        return ""
    part, charset = chosen
    data = raw[part.bs : min(part.be, part.bs + _SCAN)]
    try:
        data = mime.decode_cte(data, part.cte)
    except mime.UnknownCTE:
        return ""
    text = mime.decode_text(data, charset)
    if part.sub.lower() == b"html":
        text = html.unescape(_TAG.sub(" ", _DROP.sub(" ", text)))
    return collapsed(text)


# Characters of a text whose white space runs are made single spaces first: enough for
# MAX_CHARS unless the text is nearly all white space.
_HEAD = 4 * MAX_CHARS


def collapsed(text: str) -> str:
    """ " ".join(text.split())[:MAX_CHARS], from the text's first _HEAD characters when they
    give that many: the words of a prefix, joined, are a prefix of the whole's (a word cut at
    its end is the start of that word). Splitting the whole part cost a word object for
    each of its words (about 18,000 instructions for port 25's 1 KB message, ten times
    that at 10 KB) for the 256 characters kept."""
    head = " ".join(text[:_HEAD].split())
    if len(head) >= MAX_CHARS or len(text) <= _HEAD:
        return head[:MAX_CHARS]
    return " ".join(text.split())[:MAX_CHARS]

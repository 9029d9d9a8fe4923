"""OBJECTID (RFC 8474): the ids of folders, messages and threads, from what the rows hold.

MAILBOXID is the folder row's id, which RENAME keeps and nothing reuses (RFC 8474 4.1).
EMAILID is the blob's id: COPY and MOVE share the blob, so a message keeps its EMAILID
through them (4.2). THREADID is a digest of Message.thread_key (the first References entry,
else In-Reply-To, else the Message-ID: the thread's root), the same for every message of a
thread; NIL for a message with none of those fields (4.3 allows NIL).
"""

from __future__ import annotations

import hashlib
import re

_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}$")


def mailbox_id(folder_id: int) -> str:
    return f"F{folder_id}"


def email_id(blob_id: int) -> str:
    return f"M{blob_id}"


def thread_id(thread_key: str) -> str | None:
    if not thread_key:
        return None
    return "T" + hashlib.sha256(thread_key.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def parse_email_id(text: str) -> int | None:
    """The blob id an EMAILID names; None for an id that names no message of ours."""
    if len(text) > 1 and text[0] == "M" and text[1:].isdigit() and text[1:].isascii():
        return int(text[1:])
    return None


def valid(text: str) -> bool:
    """objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474 7)."""
    return bool(_OBJECTID.match(text))

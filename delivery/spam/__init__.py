"""The spam verdict of a message received on port 25.

`verdict(...)` asks the scorer MAILHOST_SPAM_BACKEND names (`builtin`: delivery/spam/
builtin.py; `rspamd`: delivery/spam/rspamd.py; `off`) and returns a SpamVerdict: reasons
that hold for the message whoever reads it (GTUBE, authentication, DNS lists, heuristics, or
rspamd's symbols) and, per recipient mailbox, reasons of that mailbox's own (its allow/block
lists, the senders it knows, its classifier). Points add up as SpamAssassin's and rspamd's
do: at MAILHOST_SPAM_JUNK_SCORE a mailbox gets the message in Junk; at
MAILHOST_SPAM_REJECT_SCORE (message reasons only, and unless a recipient allow-lists the
sender) it is refused at DATA with 550 5.7.1 and nothing is stored.

The verdict goes into the stored bytes as `X-Spam: Yes|No` and `X-Spam-Score: <score>
(<code>=<points> "<plain words>"; ...)` (headers(); reasons_of() reads them back for the
webmail's "why is this junk?"). The bytes are stored once for every recipient, so with one
recipient mailbox (the usual case) the headers carry its whole verdict; with several they
carry the message's reasons only, and each mailbox's own reasons decide its Junk
(junk_mailbox_ids) without being written down.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from mailboxes.exceptions import MailhostError

if TYPE_CHECKING:
    from delivery.spam.selectors import SenderFacts
    from mailboxes.headers import HeaderRead
    from mailhost.plainsql import Read

logger = logging.getLogger("mailhost.spam")

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class SpamRejected(MailhostError):
    """The message scored at or above MAILHOST_SPAM_REJECT_SCORE: refuse it (550 5.7.1)."""

    def __init__(self, verdict: SpamVerdict) -> None:
        super().__init__(f"spam score {verdict.score:.1f}")
        self.verdict = verdict


@dataclass(frozen=True)
class Reason:
    code: str  # e.g. GTUBE, SPF_FAIL, BAYES_SPAM, or an rspamd symbol
    score: float  # points added (negative: points taken away)
    words: str  # plain words for people ("it contains the GTUBE test string")


@dataclass
class SpamVerdict:
    """Made whole by the scorer and not changed after: its score and Junk mailboxes, asked
    for four times a message (the headers, the filing, the log line), are worked out once."""

    message_reasons: list[Reason] = field(default_factory=list)
    mailbox_reasons: dict[int, list[Reason]] = field(default_factory=dict)
    backend: str = "builtin"

    @property
    def mailbox_ids(self) -> list[int]:
        return list(self.mailbox_reasons)

    @property
    def reasons(self) -> list[Reason]:
        """The message's reasons, and its one mailbox's when there is just one."""
        if len(self.mailbox_reasons) == 1:
            return self.reasons_for(next(iter(self.mailbox_reasons)))
        return list(self.message_reasons)

    @functools.cached_property
    def score(self) -> float:
        return round(sum(r.score for r in self.reasons), 1)

    @property
    def is_spam(self) -> bool:
        """Junk: its one mailbox's decision (allow/block lists included), or with several
        mailboxes the message's score against the junk threshold."""
        if len(self.mailbox_reasons) == 1:
            return next(iter(self.mailbox_reasons)) in self.junk_mailbox_ids
        return self.score >= settings.MAILHOST_SPAM_JUNK_SCORE

    @property
    def reject(self) -> bool:
        message_score = sum(r.score for r in self.message_reasons)
        allowed = any(
            r.code == "ALLOW_LISTED" for reasons in self.mailbox_reasons.values() for r in reasons
        )
        return message_score >= settings.MAILHOST_SPAM_REJECT_SCORE and not allowed

    def reasons_for(self, mailbox_id: int) -> list[Reason]:
        return [*self.message_reasons, *self.mailbox_reasons.get(mailbox_id, [])]

    def score_for(self, mailbox_id: int) -> float:
        return round(sum(r.score for r in self.reasons_for(mailbox_id)), 1)

    @functools.cached_property
    def junk_mailbox_ids(self) -> set[int]:
        """Mailboxes that file the message into Junk: an allow-listed sender never, a
        block-listed one always, the rest by score."""
        junk = settings.MAILHOST_SPAM_JUNK_SCORE
        result = set()
        for mailbox_id, reasons in self.mailbox_reasons.items():
            codes = {r.code for r in reasons}
            if "ALLOW_LISTED" in codes:
                continue
            if "BLOCK_LISTED" in codes or self.score_for(mailbox_id) >= junk:
                result.add(mailbox_id)
        return result

    def headers(self) -> bytes:
        """X-Spam and X-Spam-Score header fields (CRLF-terminated, folded, ASCII); none when
        MAILHOST_SPAM_BACKEND is off."""
        if self.backend == "off":
            return b""
        return render_headers(self.score, self.reasons, spam=self.is_spam)


def render_headers(score: float, reasons: Iterable[Reason], *, spam: bool | None = None) -> bytes:
    if spam is None:
        spam = score >= settings.MAILHOST_SPAM_JUNK_SCORE
    parts = [f'{r.code}={r.score:.1f} "{_header_safe(r.words)}"' for r in reasons if r.score]
    value = f"{score:.1f}"
    if parts:
        value += " (" + ";\r\n\t".join(parts) + ")"
        value = value.replace(" (", "\r\n\t(", 1)
    return f"X-Spam: {'Yes' if spam else 'No'}\r\nX-Spam-Score: {value}\r\n".encode("ascii")


_UNSAFE = re.compile(r'[^\x20-\x7e]|"|\\')


def _header_safe(text: str) -> str:
    return _UNSAFE.sub("?", text)[:200]


_HEADER_REASON = re.compile(r'([A-Za-z0-9_.-]+)=(-?\d+(?:\.\d+)?) "([^"]*)"')
_HEADER_SCORE = re.compile(r"\s*(-?\d+(?:\.\d+)?)")


def reasons_of(value: str) -> tuple[float, list[Reason]] | None:
    """The score and reasons of an X-Spam-Score header value we wrote (unfolded or not);
    None when it is not one."""
    match = _HEADER_SCORE.match(value)
    if not match:
        return None
    reasons = [Reason(c, float(s), w) for c, s, w in _HEADER_REASON.findall(value)]
    return float(match[1]), reasons


def verdict(
    *,
    raw: bytes,
    auth=None,  # delivery.inbound.AuthResults | None  # noqa: ANN001
    client_ip: str,
    helo: str,
    mail_from: str,
    mailbox_ids: Iterable[int],
    recipients: Sequence[str] = (),
    queue_id: str = "",
    header: HeaderRead | None = None,
    facts: SenderFacts | None = None,
) -> SpamVerdict:
    """The spam verdict of one message for its recipient mailboxes (see the module doc).
    `recipients` (the envelope's) and `queue_id` are passed on to rspamd; `header`
    (mailboxes.headers.header_read of `raw`) spares the builtin scorer a parse; `facts`
    (sender_facts of the mailboxes and the From address, or the envelope sender without
    one), a read of them."""
    ids = sorted(set(mailbox_ids))
    backend = settings.MAILHOST_SPAM_BACKEND
    if backend == "off":
        return SpamVerdict([], {m: [] for m in ids}, backend)
    message = {
        "raw": raw,
        "auth": auth,
        "client_ip": client_ip,
        "helo": helo,
        "mail_from": mail_from,
        "mailbox_ids": ids,
    }
    if backend == "rspamd":
        from delivery.spam import rspamd

        result = rspamd.verdict(
            **message, recipients=list(recipients), queue_id=queue_id, facts=facts
        )
    else:
        from delivery.spam import builtin

        result = builtin.verdict(**message, header=header, facts=facts)
    logger.info(
        "spam_verdict backend=%s client=%s score=%.1f junk=%d/%d reject=%s codes=%s",
        backend,
        client_ip,
        result.score,
        len(result.junk_mailbox_ids),
        len(ids),
        result.reject,
        ",".join(r.code for r in result.reasons if r.score) or "-",
    )
    return result


def sender_facts(
    mailbox_ids: Iterable[int], sender: str, *also: Read
) -> tuple[SenderFacts | None, list]:
    """verdict's `facts`, read with the caller's `also` (reads that depend on none of them) in
    one round trip on PostgreSQL; None when the backend reads none (off)."""
    from delivery.spam import selectors

    if settings.MAILHOST_SPAM_BACKEND == "off":
        from mailhost.plainsql import selects_together

        return None, selects_together(also)
    return selectors.sender_facts(mailbox_ids, sender, *also)


__all__ = [
    "GTUBE",
    "Reason",
    "SpamRejected",
    "SpamVerdict",
    "reasons_of",
    "sender_facts",
    "verdict",
]

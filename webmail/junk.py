"""Why is this junk? The verdict stored in a message's header, in plain words.

Reads what the receiving MTA put at the top of the stored message: our Authentication-Results
field (RFC 8601, authserv-id MAILHOST_HOSTNAME; any claiming our id from outside is removed on
receipt), read back and worded by delivery.inbound (AuthResults.from_header, .reasons()), and
the X-Spam / X-Spam-Score fields of the spam verdict. Sans-IO: header bytes in, an
Explanation out; the view decides what to show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from mailboxes import headers

BAD, GOOD, INFO = "bad", "good", "info"


@dataclass(frozen=True)
class Finding:
    tone: str  # BAD, GOOD or INFO
    words: str
    code: str = ""
    score: float | None = None


@dataclass(frozen=True)
class Explanation:
    spam: bool | None  # X-Spam: Yes/No; None when the message carries no verdict
    score: float | None
    findings: list[Finding]

    @property
    def bad(self) -> list[Finding]:
        return [f for f in self.findings if f.tone == BAD]


# --- X-Spam-Score ---------------------------------------------------------------------------

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_SCORE_HEAD = re.compile(rf"^\s*({_NUMBER})")
_ITEM = re.compile(rf"([A-Za-z][A-Za-z0-9_.-]*)\s*(?:=|\(|:)\s*({_NUMBER})\)?")


def parse_spam_score(value: str) -> tuple[float | None, list[tuple[str, float]]]:
    """The total and the (code, score) items of an X-Spam-Score value, as written by
    delivery.spam (`7.3 (GTUBE=1000.0, ...)`; `CODE(1.0)` and `CODE:1.0` are read too)."""
    head = _SCORE_HEAD.match(value)
    total = float(head.group(1)) if head else None
    rest = value[head.end() :] if head else value
    rest = _QUOTED.sub(" ", rest)  # delivery.spam's plain words: not items themselves
    return total, [(code, float(score)) for code, score in _ITEM.findall(rest)]


_QUOTED = re.compile(r'"[^"]*"')
_ITEM_WORDS = re.compile(rf'([A-Za-z][A-Za-z0-9_.-]*)=({_NUMBER}) "([^"]*)"')


def spam_score_words(value: str) -> dict[str, str]:
    """The plain words delivery.spam writes after each item (`CODE=1.0 "words"`), by code."""
    return {code: words for code, _, words in _ITEM_WORDS.findall(value)}


# --- Plain words ----------------------------------------------------------------------------

# Words of the spam scorer's own reason codes; a code neither listed here nor one of the
# authentication reasons (delivery.inbound's AuthResults.reasons) is shown as it is.
SPAM_WORDS: dict[str, str | Promise] = {
    "GTUBE": _("Contains the GTUBE test string, which marks a message as spam on purpose."),
}
_GOOD_CODES = ("_PASS", "_OVERRIDE")
_INFO_CODES = ("_TEMPERROR", "DKIM_NONE")


def _sentence(words: str) -> str:
    words = words.strip()
    if not words:
        return words
    words = words[0].upper() + words[1:]
    return words if words.endswith((".", "!", "?")) else words + "."


def _tone(code: str, score: float | None) -> str:
    if score is not None:
        return BAD if score > 0 else GOOD if score < 0 else INFO
    if code.endswith(_GOOD_CODES):
        return GOOD
    if code.endswith(_INFO_CODES):
        return INFO
    return BAD


def explain(raw: bytes, *, authserv_id: str) -> Explanation:
    """The verdict stored in `raw`'s header: the spam scorer's reasons, largest score first,
    then what our own Authentication-Results says (read back by delivery.inbound, which
    wrote it; another server's field is not believed), each reason once."""
    from delivery.inbound.results import AuthResults

    parsed = BytesHeaderParser(policy=compat32).parsebytes(headers.header_block(raw))
    spam_value = (parsed.get("X-Spam") or "").strip().lower()
    spam = True if spam_value.startswith("yes") else False if spam_value.startswith("no") else None
    score_value = headers.header_text(parsed.get("X-Spam-Score") or "")
    total, items = parse_spam_score(score_value)
    written = spam_score_words(score_value)
    auth = AuthResults.from_header(raw, authserv_id)
    auth_words = dict(auth.reasons()) if auth is not None else {}
    findings: list[Finding] = []
    for code, score in sorted(items, key=lambda item: -item[1]):
        words = (
            auth_words.pop(code, None)
            or str(SPAM_WORDS.get(code.upper()) or "")
            or written.get(code)
        )
        words = words or code.replace("_", " ").capitalize()
        findings.append(Finding(_tone(code, score), _sentence(words), code, score))
    for code, words in auth_words.items():
        findings.append(Finding(_tone(code, None), _sentence(words), code))
    return Explanation(spam, total, findings)

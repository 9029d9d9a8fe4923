"""The rspamd backend: rspamd's HTTP protocol (https://rspamd.com/doc/developers/protocol.html).

A check is `POST /checkv2` with the message as the body and the envelope in headers (IP,
Helo, From, Rcpt, Queue-Id, Hostname); rspamd answers JSON with `score` and `symbols`
({name: {score, description}}). Its score and symbols become the message reasons; our
thresholds (MAILHOST_SPAM_JUNK_SCORE / _REJECT_SCORE) decide, not rspamd's actions. Each
mailbox's allow/block lists still apply. Learning is `POST /learnspam` or `/learnham` with
the message, on the same user actions as the builtin classifier (training rows).

MAILHOST_RSPAMD_URL is rspamd's controller worker (port 11334), which answers both checks
and learning. When rspamd cannot be reached the message gets no score (logged as
spam_backend_unavailable) rather than a 4xx: a filter outage must not hold mail up.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence

from django.conf import settings

from delivery.spam import Reason, SpamVerdict
from delivery.spam.builtin import mailbox_reasons
from delivery.spam.selectors import SenderFacts

logger = logging.getLogger("mailhost.spam")


class RspamdError(Exception):
    pass


def _post(path: str, body: bytes, headers: dict[str, str] | list[tuple[str, str]]) -> dict:
    url = settings.MAILHOST_RSPAMD_URL.rstrip("/") + path
    request = urllib.request.Request(url, data=body, method="POST")
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=settings.MAILHOST_RSPAMD_TIMEOUT) as reply:
            return json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise RspamdError(f"{path}: HTTP {exc.code} {detail}") from None
    except (OSError, ValueError) as exc:
        raise RspamdError(f"{path}: {exc}") from None


def _header_value(text: str) -> str:
    return "".join(c for c in text if c.isprintable())[:500]


def check(
    *,
    raw: bytes,
    client_ip: str,
    helo: str,
    mail_from: str,
    recipients: list[str],
    queue_id: str = "",
) -> dict:
    headers = [
        ("IP", _header_value(client_ip)),
        ("Helo", _header_value(helo)),
        ("From", _header_value(mail_from)),
        ("Hostname", "unknown"),
        ("MTA-Name", settings.MAILHOST_HOSTNAME),
        ("Content-Type", "message/rfc822"),
    ]
    headers += [("Rcpt", _header_value(r)) for r in recipients]
    if queue_id:
        headers.append(("Queue-Id", _header_value(queue_id)))
    return _post("/checkv2", raw, headers)


def learn(raw: bytes, *, spam: bool) -> dict:
    """Teach rspamd's Bayes this message; 'already learned' counts as done."""
    path = "/learnspam" if spam else "/learnham"
    try:
        return _post(path, raw, {"Content-Type": "message/rfc822"})
    except RspamdError as exc:
        if "already learned" in str(exc).lower():
            return {"success": True, "already": True}
        raise


def verdict(
    *,
    raw: bytes,
    auth,  # noqa: ANN001
    client_ip: str,
    helo: str,
    mail_from: str,
    mailbox_ids: list[int],
    recipients: Sequence[str] = (),
    queue_id: str = "",
    facts: SenderFacts | None = None,
) -> SpamVerdict:
    from mailboxes import headers as message_headers

    reasons: list[Reason] = []
    try:
        answer = check(
            raw=raw,
            client_ip=client_ip,
            helo=helo,
            mail_from=mail_from,
            recipients=list(recipients),
            queue_id=queue_id,
        )
    except RspamdError as exc:
        logger.warning("spam_backend_unavailable backend=rspamd error=%s", exc)
        answer = None
    if answer is not None:
        symbols = answer.get("symbols") or {}
        listed = 0.0
        for name, symbol in sorted(symbols.items()):
            score = float(symbol.get("score") or 0.0)
            if not score:
                continue
            listed += score
            words = symbol.get("description") or f"rspamd rule {name}"
            reasons.append(Reason(name, round(score, 2), str(words)))
        rest = round(float(answer.get("score") or 0.0) - listed, 2)
        if rest:
            reasons.append(Reason("RSPAMD_OTHER", rest, "other rspamd rules"))
    summary = message_headers.summarize(raw)
    per_mailbox = mailbox_reasons(
        mailbox_ids,
        sender=summary["from_address"] or mail_from,
        authenticated=False,
        hashes=lambda: [],
        classifier=False,
        facts=facts,
    )
    return SpamVerdict(reasons, per_mailbox, "rspamd")

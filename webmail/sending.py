"""The webmail's one call into the submission service (the same path as port 587: sender
rules, Received, DKIM, local delivery and the spool; see delivery/submission.py)."""

from __future__ import annotations

from collections.abc import Sequence

from delivery import submission
from mailboxes.exceptions import InvalidAddress, QuotaExceeded, StorageError
from mailboxes.models import Mailbox

RECIPIENT_PROBLEMS = {
    "invalid": "is not a valid address",
    "unknown": "has no mailbox here",
    "full": "has a full mailbox (try again later)",
    "too_big": "cannot take a message this large",
    "relay_denied": "cannot be reached from this server",
    "over_quota": "has a full mailbox (try again later)",
}


class SendError(Exception):
    """The message was not sent; the text says why, in words for the form."""

    def __init__(self, text: str, *, field: str = "send") -> None:
        super().__init__(text)
        self.field = field


def recipient_problems(recipients: Sequence[str], size: int) -> list[str]:
    """The cheap early check the SMTP RCPT hook makes, so the form can say what is wrong
    before anything is sent."""
    problems = []
    for address in recipients:
        verdict = submission.recipient_check(address, relay_allowed=True, size=size)
        if verdict != "ok":
            problems.append(f"{address} {RECIPIENT_PROBLEMS.get(verdict, verdict)}")
    return problems


def send(
    *, mailbox: Mailbox, raw: bytes, recipients: Sequence[str], client_ip: str = ""
) -> submission.AcceptResult:
    """Submit; returns only once the message is committed (filed locally and/or spooled)."""
    problems = recipient_problems(recipients, len(raw))
    if problems:
        raise SendError("Not sent: " + "; ".join(problems) + ".", field="to")
    try:
        return submission.message_submit(
            mailbox=mailbox,
            raw=raw,
            mail_from=mailbox.ascii_address,
            recipients=list(recipients),
            client_ip=client_ip,
        )
    except submission.SenderNotAllowed as exc:
        raise SendError(f"Not sent: {exc}.") from exc
    except InvalidAddress as exc:
        raise SendError(f"Not sent: {exc}.", field="to") from exc
    except submission.NoRecipients as exc:
        raise SendError("Not sent: no recipient accepted the message.", field="to") from exc
    except QuotaExceeded as exc:
        raise SendError(f"Not sent: {exc}.") from exc
    except StorageError as exc:
        raise SendError("Not sent: the server could not store the message; try again.") from exc


def refused_text(result: submission.AcceptResult) -> str:
    return "; ".join(
        f"{r.address} {RECIPIENT_PROBLEMS.get(r.status, r.status)}" for r in result.refused
    )

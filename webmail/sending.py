"""The webmail's one call into the submission service (the same path as port 587: sender
rules, Received, DKIM, local delivery and the spool; see delivery/accept.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from delivery import accept
from mailboxes.exceptions import InvalidAddress, QuotaExceeded, StorageError
from mailboxes.outcomes import Outcome

if TYPE_CHECKING:
    from mailboxes.models import Mailbox

# The webmail's words for recipient outcomes (what SMTP says with RECIPIENT_REPLIES).
RECIPIENT_PROBLEMS = {
    Outcome.INVALID: _("is not a valid address"),
    Outcome.NO_SUCH_USER: _("has no mailbox here"),
    Outcome.OVER_QUOTA: _("has a full mailbox (try again later)"),
    Outcome.TOO_BIG: _("cannot take a message this large"),
    Outcome.RELAY_DENIED: _("cannot be reached from this server"),
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
        verdict, _ = accept.recipient_verdict(address, relay_allowed=True, size=size)
        if verdict is not Outcome.OK:
            problems.append(f"{address} {RECIPIENT_PROBLEMS.get(verdict, verdict)}")
    return problems


def send(
    *, mailbox: Mailbox, raw: bytes, recipients: Sequence[str], client_ip: str = ""
) -> accept.AcceptResult:
    """Submit; returns only once the message is committed (filed locally and/or spooled)."""
    problems = recipient_problems(recipients, len(raw))
    if problems:
        raise SendError("Not sent: " + "; ".join(problems) + ".", field="to")
    try:
        return accept.message_submit(
            mailbox=mailbox,
            raw=raw,
            mail_from=mailbox.ascii_address,
            recipients=list(recipients),
            client_ip=client_ip,
        )
    except accept.SenderNotAllowed as exc:
        raise SendError(f"Not sent: {exc}.") from exc
    except InvalidAddress as exc:
        raise SendError(f"Not sent: {exc}.", field="to") from exc
    except accept.NoRecipients as exc:
        raise SendError("Not sent: no recipient accepted the message.", field="to") from exc
    except QuotaExceeded as exc:
        raise SendError(f"Not sent: {exc}.") from exc
    except StorageError as exc:
        raise SendError("Not sent: the server could not store the message; try again.") from exc


def refused_text(result: accept.AcceptResult) -> str:
    return "; ".join(
        f"{r.address} {RECIPIENT_PROBLEMS.get(r.status, r.status)}" for r in result.refused
    )

"""What the store asks of the outbound side, which it may not import (README, "Architecture:
who may import whom"): the delivery app connects its functions when it is ready
(delivery/outbound.py), as the spool's gauges join /metrics.

The MDA (mailboxes/mda.py) builds, signs and spools the mail a Sieve script sends (redirects
with an ARC seal, vacation replies, reject notices, notifications), and the store's services
tell the spam filter what a mailbox trusts and what it was taught. Building those messages,
signing them, the spool and the spam filter are delivery's; each field names the function of
delivery's that answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Outbound:
    dkim_sign: Callable[..., bytes]  # delivery.dkim.dkim_sign
    arc_seal: Callable[..., bytes]  # delivery.dkim.arc_seal
    # RFC 3834, 5230, 5429, 5436 (delivery/autoreply.py)
    vacation_refusal: Callable[..., str]
    vacation_handle: Callable[..., str]
    vacation_reply: Callable[..., bytes]
    auto_submitted: Callable[[bytes], bool]
    reject_mdn: Callable[..., bytes]
    notify_message: Callable[..., bytes]
    reject_dsn: Callable[..., bytes]  # an ereject past the SMTP session (delivery/outbound.py)
    # in the caller's transaction
    spool: Callable[..., None]  # our own notice to its recipients (delivery/outbound.py)
    known_senders_add: Callable[..., None]  # delivery.spam.services
    training_request: Callable[..., list[int]]  # delivery.spam.services


_outbound: Outbound | None = None


def connect(outbound: Outbound) -> None:
    """Called by the delivery app once it is ready."""
    global _outbound
    _outbound = outbound


def outbound() -> Outbound:
    if _outbound is None:
        raise RuntimeError("no outbound side connected to the store (is 'delivery' installed?)")
    return _outbound

"""The password login every protocol session makes (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3
USER/PASS and AUTH): wait what the shared limiter asks (awaited, never blocking the event loop),
then one mailbox_login in a worker thread, which records the outcome and logs it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from mailboxes import services, throttle
from mailboxes.exceptions import AppPasswordRequired
from mailboxes.models import Mailbox

__all__ = ["AppPasswordRequired", "Throttled", "identity_refused", "password_login"]


class Throttled(Exception):
    """Too many recent failures: the password was not checked; retry after `wait` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"retry after {wait:.0f} s")
        self.wait = wait


async def password_login(
    db: Callable[..., Awaitable[Any]],
    *,
    protocol: str,
    address: str,
    password: str,
    client_ip: str | None,
) -> Mailbox | None:
    """The mailbox, or None for a wrong password or address; Throttled when the limiter
    refuses the attempt (after holding the reply for as long as a session ever waits);
    AppPasswordRequired when the mailbox has two-factor sign-in and this was not one of its
    app passwords (a failure too: the reply tells the user to make an app password).
    `db` runs a sync service in the protocol's worker threads."""
    admission = throttle.admit(address, client_ip)
    await asyncio.sleep(min(admission.wait, throttle.MAX_DELAY))
    if not admission.admitted:
        throttle.login_refused(
            protocol=protocol, user=address, client_ip=client_ip, wait=admission.wait
        )
        raise Throttled(admission.wait)
    return await db(
        services.mailbox_login,
        address=address,
        password=password,
        client_ip=client_ip,
        protocol=protocol,
    )


def identity_refused(*, protocol: str, user: str, client_ip: str | None) -> None:
    """A SASL PLAIN authorization identity other than the user's own (acting as someone else
    is not offered): a failed login, counted and logged like a wrong password."""
    throttle.login_result(
        protocol=protocol, user=user, client_ip=client_ip, succeeded=False, user_exists=True
    )

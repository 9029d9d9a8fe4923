"""The password login every mail protocol makes (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3
USER/PASS and AUTH, ManageSieve AUTHENTICATE): check the authorization identity, wait what the
shared limiter asks (awaited, never blocking the event loop), then one mailbox_login in a worker
thread, which records the outcome and logs it. A session maps the Refusal to its own reply and
counts its failures with a FailureCount."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from mailboxes import selectors, services, throttle
from mailboxes.exceptions import AppPasswordRequired
from protocols.common.sasl import Cancelled, Challenge, Credentials, Exchange, Malformed

if TYPE_CHECKING:
    from mailboxes.models import Mailbox

__all__ = [
    "Credentials",
    "EventLogin",
    "FailureCount",
    "Refusal",
    "password_login",
    "plaintext_allowed",
    "record",
]

Db = Callable[..., Awaitable[Any]]  # runs a sync service in the protocol's worker threads


class Refusal(enum.Enum):
    FAILED = "failed"  # wrong password, or no such (active) mailbox
    IDENTITY = "identity"  # an authorization identity other than the user's own
    THROTTLED = "throttled"  # the limiter refused: the password was not checked
    APP_PASSWORD = "app_password"  # two-factor sign-in is on and this was no app password


def plaintext_allowed(secure: bool) -> bool:
    """Whether a password may be sent on this connection (TLS, or the operator allows it)."""
    return secure or settings.MAILHOST_ALLOW_PLAINTEXT_AUTH


async def password_login(
    db: Db, *, protocol: str, credentials: Credentials, client_ip: str | None
) -> Mailbox | Refusal:
    """The mailbox the credentials open, or why not. Every refusal is counted by the limiter
    and logged (`auth failure`, or `auth throttled` when the password was not checked).

    The authorization identity (SASL PLAIN's authzid) must name the user's own mailbox, after
    the normalization the mailbox lookup makes (selectors.mailbox_addresses_same): acting as
    someone else is not offered, and is a failed login of the user, without a wait."""
    user = credentials.authcid
    if credentials.authzid not in ("", user) and not await db(
        selectors.mailbox_addresses_same, address=user, other=credentials.authzid
    ):
        throttle.login_result(
            protocol=protocol, user=user, client_ip=client_ip, succeeded=False, user_exists=True
        )
        return Refusal.IDENTITY
    admission = throttle.admit(user, client_ip)
    await asyncio.sleep(min(admission.wait, throttle.MAX_DELAY))
    if not admission.admitted:
        throttle.login_refused(
            protocol=protocol, user=user, client_ip=client_ip, wait=admission.wait
        )
        return Refusal.THROTTLED
    try:
        mailbox = await db(
            services.mailbox_login,
            address=user,
            password=credentials.password,
            client_ip=client_ip,
            protocol=protocol,
        )
    except AppPasswordRequired:
        return Refusal.APP_PASSWORD
    return Refusal.FAILED if mailbox is None else mailbox


async def record(db: Db, mailbox: Mailbox) -> None:
    """Note the login on the mailbox (last_login_at), skipping the thread hop when it is not
    due; bookkeeping only, it never refuses the login."""
    if services.mailbox_login_record_due(mailbox):
        await db(services.mailbox_record_login, mailbox=mailbox)


@dataclass
class FailureCount:
    """A session's failed logins, up to the limit after which it is closed (the shared limiter
    slows guessing across sessions)."""

    limit: int
    count: int = 0

    def add(self) -> bool:
        """Count one failure; True when it was the last the session allows."""
        self.count += 1
        return self.count >= self.limit


class EventLogin:
    """SASL and the password login of a session whose parser hands it the client's SASL
    responses as events (POP3, ManageSieve): the steps are here, the replies are the
    session's, through the hooks below. The session has `conn.peer_ip` and `failures`."""

    conn: Any
    protocol: str
    refusals: Mapping[Refusal, Any]  # the session's reply to each refusal
    sasl: Exchange | None = None  # an exchange waiting for the client's response

    @staticmethod
    def db(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        raise NotImplementedError

    async def sasl_challenge(self, data: bytes) -> None:
        """Send the challenge (raw octets) and have the parser read the next line as the
        client's response."""
        raise NotImplementedError

    async def sasl_failed(self, error: Cancelled | Malformed) -> None:
        raise NotImplementedError

    async def login_failed(self, reply: Any) -> None:
        """A refused login (its reply); the session counts it in `failures`."""
        raise NotImplementedError

    async def logged_in(self, mailbox: Mailbox) -> None:
        raise NotImplementedError

    async def sasl_start(self, mechanism: str, initial: str | bytes | None) -> None:
        await self._sasl_step(Exchange(mechanism, initial), None)

    async def sasl_response(self, response: str | bytes) -> None:
        """The client's answer to the challenge sent last (the parser reads one only then)."""
        exchange = self.sasl
        if exchange is None:
            raise RuntimeError("a SASL response without a challenge")
        await self._sasl_step(exchange, response)

    async def _sasl_step(self, exchange: Exchange, response: str | bytes | None) -> None:
        self.sasl = None
        try:
            step = exchange.start() if response is None else exchange.respond(response)
        except (Cancelled, Malformed) as error:
            await self.sasl_failed(error)
            return
        if isinstance(step, Challenge):
            self.sasl = exchange
            await self.sasl_challenge(step.data)
            return
        await self.login(step)

    async def login(self, credentials: Credentials) -> None:
        mailbox = await password_login(
            self.db, protocol=self.protocol, credentials=credentials, client_ip=self.conn.peer_ip
        )
        if isinstance(mailbox, Refusal):
            await self.login_failed(self.refusals[mailbox])
        else:
            await self.logged_in(mailbox)

"""What a script asks for (RFC 5228 4 and the extensions), as values the MDA carries out, and
what the MDA hands the script: the message, its envelope and callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailboxes.sieve.errors import SieveError


@dataclass(frozen=True, slots=True)
class Keep:
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileInto:
    mailbox: str
    flags: tuple[str, ...] = ()
    copy: bool = False  # RFC 3894: does not cancel the implicit keep
    create: bool = False  # RFC 5490 3.2
    specialuse: str | None = None  # RFC 8579 4: the folder with this attribute, if any
    mailboxid: str | None = None  # RFC 9042 4: file there if it exists, else into `mailbox`


@dataclass(frozen=True, slots=True)
class Redirect:
    address: str
    copy: bool = False


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    extended: bool = False  # ereject: refuse in the SMTP dialogue when possible (RFC 5429 2.1)


@dataclass(frozen=True, slots=True)
class Discard:
    pass


@dataclass(frozen=True, slots=True)
class Vacation:
    """RFC 5230 4: the MDA decides whether to send (one per sender per `seconds`, never to
    lists, bulk, auto-submitted or null senders, only when an address of the user is in
    To/Cc/Bcc) and adds RFC 3834 headers."""

    reason: str
    subject: str | None = None
    from_address: str | None = None
    addresses: tuple[str, ...] = ()
    mime: bool = False
    handle: str = ""  # given by :handle, else derived from the arguments (RFC 5230 4.2)
    seconds: int = 7 * 86400  # :days * 86400, or :seconds (RFC 6131)
    days: int | None = None

    @property
    def from_(self) -> str | None:
        return self.from_address


@dataclass(frozen=True, slots=True)
class Notify:
    """RFC 5435 3: only mailto: (RFC 5436) is accepted."""

    method: str
    from_address: str | None = None
    importance: str = "2"
    options: tuple[str, ...] = ()
    message: str | None = None

    @property
    def from_(self) -> str | None:
        return self.from_address


@dataclass(frozen=True, slots=True)
class AddHeader:
    name: str
    value: str
    last: bool = False


@dataclass(frozen=True, slots=True)
class DeleteHeader:
    """Delete the occurrences of `name` counted 1..n from the top at the time of the edit."""

    name: str
    occurrences: tuple[int, ...]


class HeaderEdits(list):
    """The editheader changes in order (RFC 5293); .apply(raw) gives the edited message."""

    def apply(self, raw: bytes) -> bytes:
        from mailboxes.sieve.message import apply_edits

        return apply_edits(raw, self)


@dataclass(frozen=True, slots=True)
class Limits:
    """Run-time budget of one delivery (the MDA passes its settings)."""

    max_steps: int = 100_000  # commands and tests evaluated, includes counted
    cpu_seconds: float = 2.0
    max_redirects: int = 4
    max_actions: int = 32
    max_include_depth: int = 10  # RFC 6609 3.2 leaves it to us; Pigeonhole's default
    max_includes: int = 32


@dataclass
class SieveContext:
    raw: bytes
    envelope_from: str = ""  # "" for the null reverse-path
    envelope_to: str = ""  # the original recipient of this delivery
    envelope_auth: str = ""  # the authenticated submitter, if any (envelope "auth")
    # RFC 5235: the spam score and the score that counts as "definitely spam" (10 / 100%);
    # None when the message was not tested.
    spam_score: float | None = None
    spam_max: float = 10.0
    virus_score: float | None = None  # RFC 5235 3.3: scaled to 1 clean .. 5 infected
    virus_max: float = 5.0
    mailbox_exists: Callable[[str], bool] | None = None
    mailboxid_exists: Callable[[str], bool] | None = None
    # RFC 8579: specialuse_exists(mailbox or None, "\\Junk") -> that folder (or any) has it
    specialuse_exists: Callable[[str | None, str], bool] | None = None
    # RFC 7352: duplicate(key, seconds) -> seen before; records the key for `seconds`.
    duplicate: Callable[[str, int], bool] | None = None
    # RFC 6609: include(name, location) -> the script's text, or None when there is none;
    # location is "personal" or "global".
    include: Callable[[str, str], str | None] | None = None
    now: datetime | None = None  # aware; its zone is "local" for the date extension
    # RFC 5183: "domain", "host", "remote-host", "remote-ip", "version"... as the MDA knows
    environment: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)


@dataclass
class SieveResult:
    actions: list = field(default_factory=list)
    implicit_keep: bool = True
    implicit_keep_flags: tuple[str, ...] = ()  # RFC 5232 3: the internal flags at the end
    errors: list[SieveError] = field(default_factory=list)
    header_edits: HeaderEdits = field(default_factory=HeaderEdits)

    @property
    def failed(self) -> bool:
        return bool(self.errors)


def utc_now() -> datetime:
    return datetime.now(UTC)

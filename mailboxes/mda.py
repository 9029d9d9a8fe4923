"""Sieve at delivery: what each mailbox's scripts decide about one message.

For every local mailbox a message is delivered to, the domain's default script runs, then
the user's active script (Pigeonhole's sieve_before, then the personal script), after the
spam verdict. Running them is `plan`: it reads (scripts, folders, the vacation and duplicate
tables) and computes, and is done before the delivery transaction, so that no script's CPU
time is spent holding the database's write lock. Its result, one MailboxPlan per mailbox
with a script, is plain data that message_deliver carries out inside the transaction that
files the message (mailboxes.services._file_into_mailboxes): the copies and their flags, the
folders to create, and the messages to spool (redirects, vacation replies, reject notices,
notifications), with the vacation and duplicate records; all of it commits together or not
at all, like the filing without a script.

No mail is lost to a script: a script that fails at run time (an error, too much CPU, too
many redirects) leaves the message to the implicit keep (INBOX, or Junk when the spam
verdict says so), with an X-Sieve-Error field on that copy saying why, and a log line.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from mailboxes import headers
from mailboxes.models import Domain, Mailbox, SieveScript
from mailboxes.outbound import outbound
from mailboxes.selectors import Resolution
from mailhost.plainsql import Read

logger = logging.getLogger(__name__)

JUNK = "\\Junk"
VACATION_MAX = 365 * 86400  # the longest vacation interval; older rate rows are dropped


@dataclass(frozen=True)
class Filing:
    """One copy of the message in one folder of the mailbox."""

    folder: str = "INBOX"  # the folder's name
    special_use: str = ""  # RFC 8579 :specialuse, or the implicit keep's Junk: tried first
    folder_id: int | None = None  # RFC 9042 :mailboxid (our folder's id), tried first
    create: bool = False  # RFC 5490 :create
    flags: tuple[str, ...] = ()  # RFC 5232, IMAP flags and keywords
    raw: bytes | None = None  # own bytes (editheader, an error note); None: the shared ones
    keep: bool = False  # the implicit keep or `keep` (falls back to nothing else)


@dataclass(frozen=True)
class Outgoing:
    """A message a script sends: spooled in the delivery transaction."""

    kind: str  # "redirect", "vacation", "reject", "notify"
    raw: bytes
    mail_from: str
    recipients: tuple[str, ...]
    # RFC 5230 4.2 rate key: (sender, handle, seconds); sent only when due
    vacation: tuple[str, str, int] | None = None


@dataclass(frozen=True)
class MailboxPlan:
    mailbox_id: int
    filings: tuple[Filing, ...]
    outgoing: tuple[Outgoing, ...] = ()
    duplicates: tuple[tuple[str, int], ...] = ()  # RFC 7352: (key, seconds) to remember
    refuse: str = ""  # an ereject's reason, for an SMTP-time 550 when the session can give it
    summary: str = ""  # what the scripts did, for the log line
    error: str = ""  # why the scripts failed (implicit keep instead)


@dataclass(frozen=True)
class _Mailbox:
    id: int
    address: str
    domain: str
    scripts: tuple[tuple[str, str], ...]  # (label, text): domain default, then the user's


# --- Where the scripts come from (managesieve's storage) ---------------------------------


def scripts_read(mailbox_ids: Sequence[int]) -> Read[list[_Mailbox]]:
    """The mailboxes among `mailbox_ids` that have a script to run, with their scripts: the
    domain's default (Domain.sieve_default), then the mailbox's active SieveScript (at most
    one: a database constraint). One plain query: it runs for every delivery (port 25 sends
    it with the spam verdict's reads: delivery.accept), and the ORM spent ten times the
    database's time building it."""
    ids = sorted(set(mailbox_ids))
    if not ids:
        return Read(None, [], lambda _: [])
    return Read(_scripts_sql(len(ids)), [True, *ids], _scripts_of, columns=6)


@functools.lru_cache(maxsize=64)
def _scripts_sql(count: int) -> str:
    """scripts_read's statement for `count` mailboxes, made once (for the one database a
    process uses), not for every message."""
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    mailbox, domain, script = (
        q(Mailbox._meta.db_table),
        q(Domain._meta.db_table),
        q(SieveScript._meta.db_table),
    )
    return (
        f"SELECT m.id, m.local_part, d.name, d.sieve_default, s.name, s.text FROM {mailbox} m "
        f"JOIN {domain} d ON d.id = m.domain_id "
        f"LEFT JOIN {script} s ON s.mailbox_id = m.id AND s.active = %s "
        f"WHERE m.id IN ({', '.join(['%s'] * count)})"
    )


def _scripts_of(rows: list[tuple]) -> list[_Mailbox]:
    found = []
    for mailbox_id, local_part, domain_name, default, name, text in rows:
        scripts = []
        if default and default.strip():
            scripts.append(("domain default", default))
        if text and text.strip():
            scripts.append((f"user script {name!r}", text))
        if scripts:
            found.append(
                _Mailbox(mailbox_id, f"{local_part}@{domain_name}", domain_name, tuple(scripts))
            )
    return found


# --- The compiled-script cache -----------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _compiled(text: str):  # noqa: ANN202 - a mailboxes.sieve Script
    from mailboxes import sieve

    return sieve.compile(text)


# --- Planning ----------------------------------------------------------------------------


@dataclass
class DeliveryInfo:
    """What the scripts of every mailbox see of one message."""

    raw: bytes
    mail_from: str
    spam: bool = False  # the X-Spam header verdict (used without junk_mailbox_ids)
    junk_mailbox_ids: frozenset[int] | None = None
    spam_score: float | None = None
    recipients: dict[int, str] = field(default_factory=dict)  # mailbox id -> envelope to

    def junk(self, mailbox_id: int) -> bool:
        if self.junk_mailbox_ids is not None:
            return mailbox_id in self.junk_mailbox_ids
        return self.spam


def plan(
    *,
    raw: bytes,
    mail_from: str,
    resolutions: Sequence[Resolution],
    spam: bool = False,
    junk_mailbox_ids: Iterable[int] | None = None,
    spam_score: float | None = None,
    scripts: list[_Mailbox] | None = None,
) -> dict[int, MailboxPlan]:
    """Run the scripts of every mailbox of `resolutions` that has one; see the module doc.
    `scripts`: scripts_read's answer for those mailboxes, when the caller read it."""
    wanted: dict[int, str] = {}
    for resolution in resolutions:
        for mailbox_id in resolution.mailbox_ids:
            wanted.setdefault(mailbox_id, resolution.address)
    if not wanted:
        return {}
    mailboxes = scripts_read(sorted(wanted)).run() if scripts is None else scripts
    if not mailboxes:
        return {}
    info = DeliveryInfo(
        raw=raw,
        mail_from=mail_from or "",
        spam=spam,
        junk_mailbox_ids=frozenset(junk_mailbox_ids) if junk_mailbox_ids is not None else None,
        spam_score=spam_score,
        recipients=wanted,
    )
    return {m.id: plan_mailbox(m, info) for m in mailboxes}


def implicit_keep(mailbox_id: int, info: DeliveryInfo, flags: Sequence[str] = ()) -> Filing:
    if info.junk(mailbox_id):
        return Filing(folder="Junk", special_use=JUNK, flags=tuple(flags), keep=True)
    return Filing(folder="INBOX", flags=tuple(flags), keep=True)


class ScriptFailure(Exception):
    """A script failed at run time: the message goes to the implicit keep."""


def plan_mailbox(mailbox: _Mailbox, info: DeliveryInfo) -> MailboxPlan:
    """Run one mailbox's scripts; never raises (a failure is the implicit keep)."""
    # This thread's CPU alone: process_time() would charge a script with what every other
    # delivery thread and session of the process spent meanwhile.
    started = time.thread_time()
    try:
        result = _run_all(mailbox, info)
        spent_ms = (time.thread_time() - started) * 1000
        if spent_ms > settings.MAILHOST_SIEVE_CPU_LIMIT_MS:
            raise ScriptFailure(f"the scripts took {spent_ms:.0f} ms of CPU")
        return result
    except Exception as exc:  # noqa: BLE001 - any failure of a script is the implicit keep
        reason = str(exc) if isinstance(exc, ScriptFailure) else f"internal error: {exc!r}"
        if not isinstance(exc, ScriptFailure):
            logger.exception("sieve failed mailbox=%s", mailbox.id)
        return failed_plan(mailbox.id, info, reason)


def failed_plan(mailbox_id: int, info: DeliveryInfo, reason: str) -> MailboxPlan:
    note = _one_line(reason)[:400]
    raw = f"X-Sieve-Error: {note}\r\n".encode("ascii", "replace") + info.raw  # one ASCII line
    keep = replace(implicit_keep(mailbox_id, info), raw=raw)
    return MailboxPlan(mailbox_id=mailbox_id, filings=(keep,), error=note, summary="error")


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


@dataclass
class _State:
    """What the scripts of one mailbox have decided so far."""

    filings: list[Filing] = field(default_factory=list)
    outgoing: list[Outgoing] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    implicit_keep: bool = True
    keep_flags: tuple[str, ...] = ()
    raw: bytes | None = None  # after editheader
    refuse: str = ""
    redirects: int = 0
    done: list[str] = field(default_factory=list)


def _run_all(mailbox: _Mailbox, info: DeliveryInfo) -> MailboxPlan:
    from mailboxes import sieve

    state = _State()
    for label, text in mailbox.scripts:
        try:
            script = _compiled(text)
        except Exception as exc:  # a script stored before a stricter parser: never fatal
            raise ScriptFailure(f"{label} script does not compile: {exc}") from None
        context = _context(mailbox, info, state)
        result = sieve.run(script, context)
        errors = list(getattr(result, "errors", None) or [])
        if errors:
            raise ScriptFailure(f"{label} script: {errors[0]}")
        _apply_result(mailbox, info, state, result)
        kept = result.implicit_keep or any(type(a).__name__ == "Keep" for a in result.actions)
        if not kept:
            # As Pigeonhole's sieve_before: the next script (the user's after the domain's
            # default) runs only while the message is still kept; a default that files it
            # into Junk, discards or redirects it decides alone.
            break
    filings = list(state.filings)
    if state.implicit_keep and not any(f.keep for f in filings):
        filings.append(implicit_keep(mailbox.id, info, state.keep_flags))
    if state.raw is not None:  # editheader: this mailbox's copies have bytes of their own
        filings = [f if f.raw is not None else replace(f, raw=state.raw) for f in filings]
    return MailboxPlan(
        mailbox_id=mailbox.id,
        filings=tuple(_unique(filings)),
        outgoing=tuple(state.outgoing),
        duplicates=tuple(state.duplicates),
        refuse=state.refuse,
        summary=" ".join(state.done) or "keep",
    )


def _unique(filings: Sequence[Filing]) -> list[Filing]:
    """RFC 5228 4.1: filing into one folder twice files one copy (flags merged)."""
    merged: dict[tuple, Filing] = {}
    for f in filings:
        key = (f.folder_id, f.special_use, f.folder if not f.special_use else "")
        if f.keep:
            key = ("keep",)
        if key in merged:
            old = merged[key]
            merged[key] = replace(old, flags=tuple(dict.fromkeys(old.flags + f.flags)))
        else:
            merged[key] = f
    return list(merged.values())


def _context(mailbox: _Mailbox, info: DeliveryInfo, state: _State):  # noqa: ANN202
    from mailboxes import sieve

    def mailbox_exists(name: str) -> bool:
        from mailboxes import selectors

        return selectors.folder_get(mailbox.id, name) is not None

    def duplicate(key: str, seconds: int) -> bool:
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        from mailboxes.models import SieveDuplicate

        seen = SieveDuplicate.objects.filter(
            mailbox_id=mailbox.id, key=digest, expires_at__gt=timezone.now()
        ).exists() or any(k == digest for k, _ in state.duplicates)
        if not seen:
            state.duplicates.append((digest, max(int(seconds), 1)))
        return seen

    def include(name: str, location: str = "personal") -> str | None:
        from mailboxes import selectors

        if location != "personal":
            return None  # RFC 6609 :global scripts: none are kept here
        script = selectors.sievescript_get(mailbox.id, name)
        return script.text if script is not None else None

    def mailboxid_exists(folder_id: str) -> bool:
        from mailboxes import selectors

        return (
            folder_id.isdigit()
            and selectors.folders_of(mailbox.id).filter(pk=int(folder_id)).exists()
        )

    limits = sieve.Limits(
        cpu_seconds=settings.MAILHOST_SIEVE_CPU_LIMIT_MS / 1000,
        max_redirects=settings.MAILHOST_SIEVE_MAX_REDIRECTS,
    )
    kwargs = dict(
        raw=state.raw if state.raw is not None else info.raw,
        envelope_from=info.mail_from,
        envelope_to=info.recipients.get(mailbox.id, mailbox.address),
        spam_score=info.spam_score if info.spam_score is not None else _spam_score(info.raw),
        mailbox_exists=mailbox_exists,
        mailboxid_exists=mailboxid_exists,
        duplicate=duplicate,
        limits=limits,
        include=include,
        now=timezone.now(),
        environment={
            "name": "Mailhost",
            "host": settings.MAILHOST_HOSTNAME,
            "domain": mailbox.domain,
            "phase": "during",
        },
    )
    return _build(sieve.SieveContext, kwargs)


def _spam_score(raw: bytes) -> float | None:
    """RFC 5235 spamtest's input: our X-Spam-Score field (the inbound path removes any that
    came from outside), None when the message was not scored."""
    match = re.search(
        rb"(?im)^x-spam-score:[ \t]*(-?[0-9]+(?:\.[0-9]+)?)", headers.header_block(raw)
    )
    return float(match.group(1)) if match else None


def _build(cls: type, kwargs: Mapping[str, object]):  # noqa: ANN202
    """The dataclass with those of `kwargs` it has fields for (the two sides grow apart)."""
    import dataclasses

    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in names})
    return cls(**kwargs)


# --- Actions -----------------------------------------------------------------------------


def _apply_result(mailbox: _Mailbox, info: DeliveryInfo, state: _State, result) -> None:  # noqa: ANN001
    edits = getattr(result, "header_edits", None)
    if edits:
        state.raw = apply_header_edits(state.raw if state.raw is not None else info.raw, edits)
    if not getattr(result, "implicit_keep", True):
        state.implicit_keep = False
    state.keep_flags = tuple(getattr(result, "implicit_keep_flags", None) or ())
    for action in getattr(result, "actions", ()):
        handler = _HANDLERS.get(type(action).__name__)
        if handler is None:
            raise ScriptFailure(f"unsupported action {type(action).__name__}")
        handler(mailbox, info, state, action)


def _flags(action) -> tuple[str, ...]:  # noqa: ANN001
    return tuple(getattr(action, "flags", None) or ())


def _keep(mailbox: _Mailbox, info: DeliveryInfo, state: _State, action) -> None:  # noqa: ANN001
    state.filings.append(implicit_keep(mailbox.id, info, _flags(action)))
    state.done.append("keep")


def _fileinto(mailbox: _Mailbox, info: DeliveryInfo, state: _State, action) -> None:  # noqa: ANN001
    folder_id = None
    mailboxid = getattr(action, "mailboxid", None)
    if mailboxid and str(mailboxid).isdigit():
        folder_id = int(mailboxid)
    specialuse = getattr(action, "specialuse", None) or ""
    name = str(getattr(action, "mailbox", "") or "INBOX")
    state.filings.append(
        Filing(
            folder=name,
            special_use=specialuse,
            folder_id=folder_id,
            create=bool(getattr(action, "create", False)),
            flags=_flags(action),
        )
    )
    state.done.append(f"fileinto:{name}")


def _discard(mailbox: _Mailbox, info: DeliveryInfo, state: _State, action) -> None:  # noqa: ANN001
    state.done.append("discard")


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def delivered_to(raw: bytes) -> list[str]:
    """The Delivered-To fields of the message (lower-cased addresses), for loop detection."""
    block = headers.header_block(headers.bounded_header(raw))
    return [
        m.group(1).decode("utf-8", "replace").strip().strip("<>").lower()
        for m in re.finditer(rb"(?im)^delivered-to:[ \t]*(.*?)\r?$", block)
    ]


def _redirect(mailbox: _Mailbox, info: DeliveryInfo, state: _State, action) -> None:  # noqa: ANN001
    from mailboxes import selectors, srs

    target = str(action.address).strip().strip("<>")
    state.redirects += 1
    if state.redirects > settings.MAILHOST_SIEVE_MAX_REDIRECTS:
        raise ScriptFailure(
            f"more than {settings.MAILHOST_SIEVE_MAX_REDIRECTS} redirects"
            " (MAILHOST_SIEVE_MAX_REDIRECTS)"
        )
    seen = delivered_to(info.raw)
    if mailbox.address.lower() in seen or len(seen) >= settings.MAILHOST_SIEVE_MAX_HOPS:
        # A loop (this mailbox redirected the message before) or a chain too long: the copy
        # stays here instead, as the implicit keep (RFC 5228 4.2 leaves loops to us).
        logger.warning(
            "sieve redirect loop mailbox=%s to=<%s> hops=%d", mailbox.id, target, len(seen)
        )
        state.filings.append(implicit_keep(mailbox.id, info))
        state.done.append(f"redirect-loop:{target}")
        return
    raw = f"Delivered-To: {mailbox.address}\r\n".encode() + (
        state.raw if state.raw is not None else info.raw
    )
    remote = not selectors.domain_is_hosted(_domain_of(target))
    mail_from = info.mail_from
    if remote:
        # SPF at the destination checks our address: the sender becomes an SRS address of
        # the forwarding mailbox's domain, and the copy carries our ARC seal.
        mail_from = srs.forward(mail_from, domain=mailbox.domain)
        raw = outbound().arc_seal(raw, domain_name=mailbox.domain)
    state.outgoing.append(Outgoing("redirect", raw, mail_from, (target,)))
    state.done.append(f"redirect:{target}")


def _reject(mailbox: _Mailbox, info: DeliveryInfo, state: _State, action) -> None:  # noqa: ANN001
    reason = str(getattr(action, "reason", "") or "Message rejected")
    extended = bool(getattr(action, "extended", False))
    state.done.append("ereject" if extended else "reject")
    if extended:
        state.refuse = _one_line(reason)[:200] or "Message rejected"
    sender = info.mail_from
    if not sender:
        return  # RFC 5429 2.1: never a notice to the null sender
    recipient = info.recipients.get(mailbox.id, mailbox.address)
    if extended:
        # ereject past the SMTP session (more than one recipient, a queued retry): a DSN.
        raw = outbound().reject_dsn(
            info.raw, mail_from=sender, recipient=recipient, reply=f"550 5.7.1 {state.refuse}"
        )
    else:
        raw = outbound().reject_mdn(info.raw, mail_from=sender, recipient=recipient, reason=reason)
    state.outgoing.append(Outgoing("reject", _signed(raw, mailbox), "", (sender,)))


def _vacation(mailbox: _Mailbox, info: DeliveryInfo, state: _State, action) -> None:  # noqa: ANN001
    autoreply = outbound()
    sender = info.mail_from
    addresses = [mailbox.address, info.recipients.get(mailbox.id, "")]
    addresses += list(getattr(action, "addresses", None) or ())
    why = autoreply.vacation_refusal(info.raw, mail_from=sender, user_addresses=addresses)
    if not why and info.junk(mailbox.id):
        why = "junk"  # answering spam is backscatter to forged senders
    if why:
        state.done.append(f"vacation-skipped({why})")
        return
    seconds = getattr(action, "seconds", None)
    if seconds is None:
        days = getattr(action, "days", None)
        seconds = int(days if days is not None else 7) * 86400
    # RFC 5230 4.1 lets a site bound :days both ways; a year at most keeps the table finite.
    seconds = min(max(int(seconds), settings.MAILHOST_SIEVE_VACATION_MIN_SECONDS), VACATION_MAX)
    reason = str(getattr(action, "reason", "") or "")
    subject = str(getattr(action, "subject", None) or "")
    from_address = str(getattr(action, "from_address", None) or "")
    mime = bool(getattr(action, "mime", False))
    handle = autoreply.vacation_handle(
        handle=str(getattr(action, "handle", None) or ""),
        subject=subject,
        from_=from_address,
        reason=reason,
        mime=mime,
    )
    raw = autoreply.vacation_reply(
        info.raw,
        from_address=from_address or mailbox.address,
        to=sender,
        subject=subject,
        reason=reason,
        mime=mime,
    )
    state.outgoing.append(
        Outgoing(
            "vacation",
            _signed(raw, mailbox),
            "",
            (sender,),
            vacation=(sender.lower(), handle, seconds),
        )
    )
    state.done.append("vacation")


def _notify(mailbox: _Mailbox, info: DeliveryInfo, state: _State, action) -> None:  # noqa: ANN001
    from urllib.parse import parse_qs, unquote, urlsplit

    autoreply = outbound()

    method = str(getattr(action, "method", "") or "")
    parts = urlsplit(method)
    if parts.scheme.lower() != "mailto":
        state.done.append(f"notify-skipped({parts.scheme})")
        return
    to = [unquote(a).strip() for a in parts.path.split(",") if a.strip()]
    query = parse_qs(parts.query)
    to += [a.strip() for v in query.get("to", []) for a in v.split(",") if a.strip()]
    # RFC 5436 2.7: never notify about a notification or an auto-reply.
    if autoreply.auto_submitted(info.raw):
        state.done.append("notify-skipped(auto-submitted)")
        return
    for address in to[:5]:
        raw = autoreply.notify_message(
            info.raw,
            from_address=str(getattr(action, "from_address", None) or mailbox.address),
            to=address,
            subject=query.get("subject", [""])[0],
            message=str(getattr(action, "message", None) or ""),
            importance=str(getattr(action, "importance", None) or "2"),
        )
        state.outgoing.append(Outgoing("notify", _signed(raw, mailbox), "", (address,)))
    state.done.append("notify")


def _signed(raw: bytes, mailbox: _Mailbox) -> bytes:
    """Our own notices DKIM-signed like submissions (the From domain's key, else the
    mailbox's domain's), so that they are not junked on arrival."""
    return outbound().dkim_sign(raw, mail_from=mailbox.address)


_HANDLERS: dict[str, Callable] = {
    "Keep": _keep,
    "FileInto": _fileinto,
    "Discard": _discard,
    "Redirect": _redirect,
    "Reject": _reject,
    "Vacation": _vacation,
    "Notify": _notify,
}


# --- editheader (RFC 5293) ---------------------------------------------------------------


def apply_header_edits(raw: bytes, edits) -> bytes:  # noqa: ANN001
    """The message with the script's header edits; the interpreter may hand them as the
    edited bytes or as a callable over them."""
    if isinstance(edits, bytes):
        return edits
    if callable(edits):
        return edits(raw)
    apply = getattr(edits, "apply", None)
    if apply is not None:
        return apply(raw)
    raise ScriptFailure("header edits of an unknown kind")


# --- Inside the delivery transaction -----------------------------------------------------


def vacation_due(*, mailbox_id: int, sender: str, handle: str, seconds: int) -> bool:
    """Record a vacation reply to `sender` if one is due (none within `seconds`); call in the
    delivery transaction. The row lock (or SQLite's write lock) keeps two deliveries from both
    answering."""
    from mailboxes.models import SieveVacationReply

    now = timezone.now()
    SieveVacationReply.objects.filter(
        mailbox_id=mailbox_id, sent_at__lt=now - timedelta(seconds=VACATION_MAX)
    ).delete()
    row = (
        SieveVacationReply.objects.select_for_update()
        .filter(mailbox_id=mailbox_id, sender=sender[:320], handle=handle)
        .first()
    )
    if row is None:
        SieveVacationReply.objects.create(
            mailbox_id=mailbox_id, sender=sender[:320], handle=handle, sent_at=now
        )
        return True
    if now - row.sent_at < timedelta(seconds=seconds):
        return False
    SieveVacationReply.objects.filter(pk=row.pk).update(sent_at=now)
    return True


def duplicates_record(*, mailbox_id: int, duplicates: Iterable[tuple[str, int]]) -> None:
    from mailboxes.models import SieveDuplicate

    now = timezone.now()
    # Expired ids go as new ones come: the table holds what can still match.
    SieveDuplicate.objects.filter(mailbox_id=mailbox_id, expires_at__lte=now).delete()
    for key, seconds in duplicates:
        expires = now + timedelta(seconds=seconds)
        updated = SieveDuplicate.objects.filter(mailbox_id=mailbox_id, key=key).update(
            expires_at=expires
        )
        if not updated:
            SieveDuplicate.objects.create(mailbox_id=mailbox_id, key=key, expires_at=expires)

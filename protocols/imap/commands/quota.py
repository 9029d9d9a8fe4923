"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA over the mailbox's quota.

One quota root, "" (the mailbox's whole storage: every folder counts against it), with two
resources: STORAGE, the byte limit (Mailbox.quota), and MESSAGE, the message-count limit
(Mailbox.quota_messages). A limit of 0 is none: the root reports only the resources that
have a limit, and exists only when one does (RFC 9208 4.2-4.3). Limits are the
administrator's: SETQUOTA is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailboxes import selectors
from mailboxes.quotas import Usage
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

ROOT = ""  # RFC 9208 4.2: the quota root's name
NO_NO_SUCH_QUOTA_ROOT = r.Reply("NO", "No such quota root", "NONEXISTENT")
NO_SETQUOTA = r.Reply("NO", "Quota limits are set by the administrator", "NOPERM")


def quota_response(usage: Usage) -> u.Quota:
    """The root's limited resources: RFC 9208 5.1 STORAGE in units of 1024 octets, 5.2
    MESSAGE in messages."""
    resources = []
    if usage.quota:
        resources.append(("STORAGE", usage.used_bytes // 1024, usage.quota // 1024))
    if usage.quota_messages:
        resources.append(("MESSAGE", usage.used_messages, usage.quota_messages))
    return u.Quota(ROOT, tuple(resources))


async def getquota(session: Session, command: p.QuotaCommand) -> r.Reply | u.Done:
    # RFC 9208 4.2
    usage = await db(selectors.mailbox_quota, session.mailbox.id)
    if command.name_arg != ROOT or not usage.limited:
        raise CommandError(NO_NO_SUCH_QUOTA_ROOT)
    await session.respond(quota_response(usage))
    return r.OK_COMPLETED


async def getquotaroot(session: Session, command: p.QuotaCommand) -> r.Reply | u.Done:
    # RFC 9208 4.3: the mailbox's roots (none without a limit), then each root's QUOTA
    folder = await db(selectors.folder_get, session.mailbox.id, command.name_arg)
    if folder is None:
        raise CommandError(r.NO_NONEXISTENT)
    usage = await db(selectors.mailbox_quota, session.mailbox.id)
    if not usage.limited:
        await session.respond(u.QuotaRoot(folder.name, (), session.utf8))
    else:
        await session.respond(
            u.QuotaRoot(folder.name, (ROOT,), session.utf8), quota_response(usage)
        )
    return r.OK_COMPLETED


async def setquota(session: Session, command: p.SetQuota) -> r.Reply | u.Done:
    # RFC 9208 4.1: the server may refuse to change limits
    raise CommandError(NO_SETQUOTA)

"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA over the mailbox's quota.

One quota root, "" (the mailbox's whole storage: every folder counts against it), with the
STORAGE resource only: the quota is a byte limit (Mailbox.quota; 0 is no limit, and then no
folder has a quota root). There is no message-count limit, so QUOTA=RES-MESSAGE is not
offered. Limits are the administrator's: SETQUOTA is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailboxes import selectors
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


def quota_response(quota: int, used: int) -> u.Quota:
    # RFC 9208 5.1: STORAGE in units of 1024 octets
    return u.Quota(ROOT, (("STORAGE", used // 1024, quota // 1024),))


async def getquota(session: Session, command: p.QuotaCommand) -> r.Reply | u.Done:
    # RFC 9208 4.2
    quota, used = await db(selectors.mailbox_quota, session.mailbox.id)
    if command.name_arg != ROOT or not quota:
        raise CommandError(NO_NO_SUCH_QUOTA_ROOT)
    await session.respond(quota_response(quota, used))
    return r.OK_COMPLETED


async def getquotaroot(session: Session, command: p.QuotaCommand) -> r.Reply | u.Done:
    # RFC 9208 4.3: the mailbox's roots (none without a limit), then each root's QUOTA
    folder = await db(selectors.folder_get, session.mailbox.id, command.name_arg)
    if folder is None:
        raise CommandError(r.NO_NONEXISTENT)
    quota, used = await db(selectors.mailbox_quota, session.mailbox.id)
    if not quota:
        await session.respond(u.QuotaRoot(folder.name, (), session.utf8))
    else:
        await session.respond(
            u.QuotaRoot(folder.name, (ROOT,), session.utf8), quota_response(quota, used)
        )
    return r.OK_COMPLETED


async def setquota(session: Session, command: p.SetQuota) -> r.Reply | u.Done:
    # RFC 9208 4.1: the server may refuse to change limits
    raise CommandError(NO_SETQUOTA)

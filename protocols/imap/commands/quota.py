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
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

ROOT = ""  # RFC 9208 4.2: the quota root's name
NO_NO_SUCH_QUOTA_ROOT = r.Reply("NO", "No such quota root", "NONEXISTENT")
NO_SETQUOTA = r.Reply("NO", "Quota limits are set by the administrator", "NOPERM")


def quota_line(quota: int, used: int) -> bytes:
    # RFC 9208 5.1: STORAGE in units of 1024 octets
    return r.untagged(f'QUOTA "{ROOT}" (STORAGE {used // 1024} {quota // 1024})')


async def getquota(session: Session, command: p.QuotaCommand) -> r.Reply | None:
    # RFC 9208 4.2
    quota, used = await db(selectors.mailbox_quota, session.mailbox.id)
    if command.name_arg != ROOT or not quota:
        raise CommandError(NO_NO_SUCH_QUOTA_ROOT)
    await session.send(quota_line(quota, used))
    return r.OK_COMPLETED


async def getquotaroot(session: Session, command: p.QuotaCommand) -> r.Reply | None:
    # RFC 9208 4.3: the mailbox's roots (none without a limit), then each root's QUOTA
    folder = await db(selectors.folder_get, session.mailbox.id, command.name_arg)
    if folder is None:
        raise CommandError(r.NO_NONEXISTENT)
    quota, used = await db(selectors.mailbox_quota, session.mailbox.id)
    name = r.mailbox_name(folder.name, utf8=session.utf8)
    if not quota:
        await session.send(r.untagged(b"QUOTAROOT " + name))
    else:
        await session.send(
            r.untagged(b"QUOTAROOT " + name + f' "{ROOT}"'.encode()) + quota_line(quota, used)
        )
    return r.OK_COMPLETED


async def setquota(session: Session, command: p.SetQuota) -> r.Reply | None:
    # RFC 9208 4.1: the server may refuse to change limits
    raise CommandError(NO_SETQUOTA)

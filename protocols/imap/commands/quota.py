"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA over the mailbox's quota.

One quota root per mailbox, its whole storage (every folder counts against it), with two
resources: STORAGE, the byte limit (Mailbox.quota), and MESSAGE, the message-count limit
(Mailbox.quota_messages). A limit of 0 is none: a root reports only the resources that
have a limit, and exists only when one does (RFC 9208 4.2-4.3). Limits are the
administrator's: SETQUOTA is refused.

The session's own root is named "". A folder another mailbox shares with the session counts
against its owner's root, named by the owner's address: GETQUOTAROOT on the shared folder
names it (an APPEND or COPY there can fail with [OVERQUOTA] of the owner's limit), and GETQUOTA
answers it while the owner shares a folder the session can see.
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


def quota_response(usage: Usage, root: str = ROOT) -> u.Quota:
    """The root's limited resources: RFC 9208 5.1 STORAGE in units of 1024 octets, 5.2
    MESSAGE in messages."""
    resources = []
    if usage.quota:
        resources.append(("STORAGE", usage.used_bytes // 1024, usage.quota // 1024))
    if usage.quota_messages:
        resources.append(("MESSAGE", usage.used_messages, usage.quota_messages))
    return u.Quota(root, tuple(resources))


async def getquota(session: Session, command: p.QuotaCommand) -> r.Reply | u.Done:
    # RFC 9208 4.2
    root = command.name_arg
    if root == ROOT:
        owner_id = session.mailbox.id
    else:
        owner_id = await db(_sharing_owner, session.mailbox.id, root)
        if owner_id is None:
            raise CommandError(NO_NO_SUCH_QUOTA_ROOT)
    usage = await db(selectors.mailbox_quota, owner_id)
    if not usage.limited:
        raise CommandError(NO_NO_SUCH_QUOTA_ROOT)
    await session.respond(quota_response(usage, root))
    return r.OK_COMPLETED


async def getquotaroot(session: Session, command: p.QuotaCommand) -> r.Reply | u.Done:
    # RFC 9208 4.3: the mailbox's roots (none without a limit), then each root's QUOTA
    access = await db(selectors.folder_access, session.mailbox.id, command.name_arg)
    if access is None:
        raise CommandError(r.NO_NONEXISTENT)
    owner_id = access.folder.mailbox_id
    root = await db(_owner_root, access) if access.shared else ROOT
    usage = await db(selectors.mailbox_quota, owner_id)
    if not usage.limited:
        await session.respond(u.QuotaRoot(access.name, (), session.utf8))
    else:
        await session.respond(
            u.QuotaRoot(access.name, (root,), session.utf8), quota_response(usage, root)
        )
    return r.OK_COMPLETED


def _owner_root(access: selectors.FolderAccess) -> str:
    """The root a shared folder counts against: its owner's address, as the owner's row spells
    it (the name the client gave may differ in case)."""
    _namespace, address, _folder = selectors.shared_name_split(access.name)
    return selectors.mailbox_get(address).address


def _sharing_owner(viewer_id: int, root: str) -> int | None:
    """The mailbox a root names when it shares a folder the viewer can see, else None (a root
    the session has no folder under is not its business)."""
    owner = selectors.mailbox_get(root)
    if owner is None or owner.id == viewer_id:
        return None
    shared = selectors.shared_folders(viewer_id)
    return owner.id if any(a.folder.mailbox_id == owner.id for a in shared) else None


async def setquota(session: Session, command: p.SetQuota) -> r.Reply | u.Done:
    # RFC 9208 4.1: the server may refuse to change limits
    raise CommandError(NO_SETQUOTA)

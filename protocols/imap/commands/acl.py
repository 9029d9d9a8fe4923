"""ACL commands (RFC 4314 3): SETACL DELETEACL GETACL LISTRIGHTS MYRIGHTS.

A folder's owner holds every right; another mailbox, or "anyone" (every mailbox of the owner's
domain), holds what the owner (or a holder of "a") granted. Shared folders show in the
"Other Users" and "Shared" namespaces (protocols/imap/commands/mailbox.py NAMESPACE, LIST)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailboxes import selectors, services
from mailboxes.exceptions import FolderError, InvalidValue, NotFound
from mailboxes.models import ACL_RIGHTS
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.commands.mailbox import _access
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

# RFC 4314 3.4: what LISTRIGHTS offers a grantee other than the owner: no right is tied to
# another, each may be granted alone.
OPTIONAL_RIGHTS = tuple(ACL_RIGHTS)
BAD_RIGHTS = r.Reply("BAD", "Unknown right")
NO_NO_SUCH_IDENTIFIER = r.Reply("NO", "No such user; give an address or anyone")
NO_OWNER_RIGHTS = r.Reply("NO", "The owner's rights cannot change", "CANNOT")


async def setacl(session: Session, command: p.AclCommand) -> r.Reply | u.Done:
    # RFC 4314 3.1: needs "a"; unknown rights are a BAD
    try:
        mode, rights = services.acl_rights_parse(command.rights)
    except InvalidValue:
        raise CommandError(BAD_RIGHTS) from None
    access = await _access(session, command.mailbox, "a")
    return await _change(
        session,
        command,
        services.folder_acl_set,
        folder=access.folder,
        identifier=command.identifier,
        rights=rights,
        mode=mode,
    )


async def deleteacl(session: Session, command: p.AclCommand) -> r.Reply | u.Done:
    # RFC 4314 3.2
    access = await _access(session, command.mailbox, "a")
    return await _change(
        session,
        command,
        services.folder_acl_delete,
        folder=access.folder,
        identifier=command.identifier,
    )


async def _change(session: Session, command: p.AclCommand, service, **kwargs) -> r.Reply:
    try:
        await db(service, **kwargs)
    except NotFound:
        raise CommandError(NO_NO_SUCH_IDENTIFIER) from None
    except FolderError:
        raise CommandError(NO_OWNER_RIGHTS) from None
    return r.OK_COMPLETED


async def getacl(session: Session, command: p.AclCommand) -> r.Reply | u.Done:
    # RFC 4314 3.3: * ACL mailbox (identifier rights)*
    access = await _access(session, command.mailbox, "a")
    entries = await db(selectors.folder_acl, access.folder)
    await session.respond(u.Acl(access.name, tuple(entries), session.utf8))
    return r.OK_COMPLETED


async def listrights(session: Session, command: p.AclCommand) -> r.Reply | u.Done:
    # RFC 4314 3.4: the owner's rights are all required; anyone else's each optional
    access = await _access(session, command.mailbox, "a")
    entries = await db(selectors.folder_acl, access.folder)
    owner = entries[0][0]
    if command.identifier.lower() == owner.lower():
        required, optional = ACL_RIGHTS, ()
    else:
        required, optional = "", OPTIONAL_RIGHTS
    await session.respond(
        u.ListRights(access.name, command.identifier, required, optional, session.utf8)
    )
    return r.OK_COMPLETED


async def myrights(session: Session, command: p.AclCommand) -> r.Reply | u.Done:
    # RFC 4314 3.5: * MYRIGHTS mailbox rights
    access = await _access(session, command.mailbox)
    await session.respond(u.MyRights(access.name, access.rights, session.utf8))
    return r.OK_COMPLETED


HANDLERS = {
    "SETACL": setacl,
    "DELETEACL": deleteacl,
    "GETACL": getacl,
    "LISTRIGHTS": listrights,
    "MYRIGHTS": myrights,
}

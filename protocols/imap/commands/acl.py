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
from protocols.imap.commands.mailbox import _access
from protocols.imap.errors import CommandError
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

# RFC 4314 3.4: what LISTRIGHTS offers a grantee other than the owner: no right is tied to
# another, each may be granted alone.
OPTIONAL_RIGHTS = " ".join(ACL_RIGHTS)
BAD_RIGHTS = r.Reply("BAD", "Unknown right")
NO_NO_SUCH_IDENTIFIER = r.Reply("NO", "No such user; give an address or anyone")
NO_OWNER_RIGHTS = r.Reply("NO", "The owner's rights cannot change", "CANNOT")


def _identifier(value: str) -> bytes:
    return r.quoted_or_literal(value)


def _mailbox(session: Session, name: str) -> bytes:
    return r.mailbox_name(name, utf8=session.utf8)


async def setacl(session: Session, command: p.AclCommand) -> r.Reply | None:
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


async def deleteacl(session: Session, command: p.AclCommand) -> r.Reply | None:
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


async def getacl(session: Session, command: p.AclCommand) -> r.Reply | None:
    # RFC 4314 3.3: * ACL mailbox (identifier rights)*
    access = await _access(session, command.mailbox, "a")
    entries = await db(selectors.folder_acl, access.folder)
    line = b"ACL " + _mailbox(session, access.name)
    for identifier, rights in entries:
        line += b" " + _identifier(identifier) + b" " + rights.encode()
    await session.send(r.untagged(line))
    return r.OK_COMPLETED


async def listrights(session: Session, command: p.AclCommand) -> r.Reply | None:
    # RFC 4314 3.4: the owner's rights are all required; anyone else's each optional
    access = await _access(session, command.mailbox, "a")
    entries = await db(selectors.folder_acl, access.folder)
    owner = entries[0][0]
    line = b"LISTRIGHTS " + _mailbox(session, access.name) + b" "
    line += _identifier(command.identifier) + b" "
    if command.identifier.lower() == owner.lower():
        line += ACL_RIGHTS.encode()
    else:
        line += b'"" ' + OPTIONAL_RIGHTS.encode()
    await session.send(r.untagged(line))
    return r.OK_COMPLETED


async def myrights(session: Session, command: p.AclCommand) -> r.Reply | None:
    # RFC 4314 3.5: * MYRIGHTS mailbox rights
    access = await _access(session, command.mailbox)
    rights = access.rights.encode() or b'""'
    await session.send(r.untagged(b"MYRIGHTS " + _mailbox(session, access.name) + b" " + rights))
    return r.OK_COMPLETED


HANDLERS = {
    "SETACL": setacl,
    "DELETEACL": deleteacl,
    "GETACL": getacl,
    "LISTRIGHTS": listrights,
    "MYRIGHTS": myrights,
}

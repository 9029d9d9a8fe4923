"""Mailbox commands: CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB NAMESPACE STATUS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from mailboxes import selectors, services
from mailboxes.models import (
    HIERARCHY_DELIMITER,
    OTHER_USERS_NAMESPACE,
    SHARED_NAMESPACE,
    Folder,
)
from protocols.imap import objectid
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.commands import metadata
from protocols.imap.errors import CommandError
from protocols.imap.listpattern import MailboxPattern
from protocols.imap.worker import db

if TYPE_CHECKING:
    from protocols.imap.session import Session

DELIMITER = HIERARCHY_DELIMITER
# Where a LIST-STATUS or LIST-METADATA response goes, right after its LIST, once read.
STATUS_SLOT, METADATA_SLOT = object(), object()
SPECIAL_USES = {"\\Sent", "\\Drafts", "\\Junk", "\\Trash", "\\Archive"}


async def _access(session: Session, name: str, right: str = "") -> selectors.FolderAccess:
    """The folder a name means to the session (its own or one shared with it), NO
    [NONEXISTENT] without one and NO [NOPERM] without `right` (RFC 4314 4)."""
    access = await db(selectors.folder_access, session.mailbox.id, name)
    if access is None:
        raise CommandError(r.NO_NONEXISTENT)
    if right and right not in access.rights:
        raise CommandError(r.NO_PERMISSION)
    return access


async def _folder(session: Session, name: str) -> Folder:
    """One of the session's own folders (RENAME does not reach into shared ones)."""
    access = await _access(session, name)
    if access.shared:
        raise CommandError(r.NO_PERMISSION)
    return access.folder


def _create_shared(viewer_id: int, name: str) -> Folder | None:
    """CREATE in another mailbox's shared folder: needs "k" on the parent (RFC 4314 4); the
    new folder takes the parent's ACL, so whoever could see the parent sees it. None when
    the name is in no mailbox's shared folder the viewer may create in."""
    owned = selectors.shared_owner(viewer_id, name)
    if owned is None:
        return False
    owner, folder_name, prefix = owned
    parent_name, _, leaf = folder_name.rpartition(DELIMITER)
    parent = selectors.folder_access(viewer_id, prefix + parent_name) if parent_name else None
    if parent is None or not leaf or "k" not in parent.rights:
        return None
    folder = services.folder_create(mailbox=owner, name=folder_name, subscribe=False)
    services.folder_acl_inherit(folder=folder, parent=parent.folder)
    return folder


async def create(session: Session, command: p.MailboxCommand) -> r.Reply | u.Done:
    # RFC 9051 6.3.4: a trailing delimiter only says the client means to create children.
    name = command.mailbox.rstrip(DELIMITER) if command.mailbox != DELIMITER else command.mailbox
    if name.upper() == "INBOX":
        raise CommandError(r.NO_ALREADY_EXISTS)
    special_use = ""
    if command.special_use:
        # RFC 6154 3: CREATE ... (USE (\Drafts))
        known = {s.lower(): s for s in SPECIAL_USES}
        if len(command.special_use) > 1 or command.special_use[0].lower() not in known:
            raise CommandError(r.NO_USE_ATTR)
        special_use = known[command.special_use[0].lower()]
    if selectors.shared_name_split(name) is not None:
        folder = None if special_use else await db(_create_shared, session.mailbox.id, name)
        if folder is None:
            raise CommandError(r.NO_PERMISSION)
    else:
        # CREATE makes the folder (and missing parents) without subscribing them: IMAP
        # clients SUBSCRIBE what they want listed (RFC 9051 6.3.4, 6.3.7).
        folder = await db(
            services.folder_create,
            mailbox=session.mailbox,
            name=name,
            special_use=special_use,
            subscribe=False,
        )
    # RFC 8474 4.1: the new mailbox's MAILBOXID in the tagged OK
    code = f"MAILBOXID ({objectid.mailbox_id(folder.id)})"
    return r.OK_COMPLETED.with_code(code)


async def delete(session: Session, command: p.MailboxCommand) -> r.Reply | u.Done:
    # RFC 9051 6.3.5
    if command.mailbox == "INBOX":
        raise CommandError(r.NO_INBOX_DELETE)
    folder = (await _access(session, command.mailbox, "x")).folder  # RFC 4314 4
    if folder.name == "INBOX":
        raise CommandError(r.NO_INBOX_DELETE)
    children = await db(_has_children, folder.mailbox_id, folder.name)
    if children:
        raise CommandError(r.NO_HAS_CHILDREN)
    await db(services.folder_delete, folder=folder)
    if session.selected is not None and session.selected.folder_id == folder.id:
        session.unselect()
    return r.OK_COMPLETED


def _has_children(mailbox_id: int, name: str) -> bool:
    prefix = name + DELIMITER
    return any(f.name.startswith(prefix) for f in selectors.folders_of(mailbox_id).only("name"))


async def rename(session: Session, command: p.Rename) -> r.Reply | u.Done:
    # RFC 9051 6.3.6: renaming INBOX moves its messages and leaves INBOX in place.
    folder = await _folder(session, command.mailbox)
    new_name = command.new_name.rstrip(DELIMITER) or command.new_name
    if selectors.shared_name_split(new_name) is not None:
        raise CommandError(r.NO_PERMISSION)
    if new_name.upper() == "INBOX" or (
        await db(selectors.folder_get, session.mailbox.id, new_name)
    ):
        raise CommandError(r.NO_ALREADY_EXISTS)
    renamed = await db(services.folder_rename, folder=folder, new_name=new_name)
    sel = session.selected
    if sel is not None and sel.folder_id == folder.id and folder.name != "INBOX":
        # The selected mailbox stays selected under its new name (its messages and UIDs
        # are the same rows); the new UIDVALIDITY shows at the next SELECT.
        sel.name = renamed.name
    return r.OK_COMPLETED


async def subscribe(session: Session, command: p.MailboxCommand) -> r.Reply | u.Done:
    # RFC 9051 6.3.7/6.3.8: the list is of names; one need not exist as a folder (a client
    # may subscribe before it creates), and a folder's deletion leaves it subscribed.
    subscribed = command.name == "SUBSCRIBE"
    name = command.mailbox
    if subscribed:
        name = services.folder_name_validate(name.rstrip(DELIMITER) or name)
    await db(services.subscription_set, mailbox=session.mailbox, name=name, subscribed=subscribed)
    return r.OK_COMPLETED


async def namespace(session: Session, command: p.Simple) -> r.Reply | u.Done:
    # RFC 2342: the personal namespace, other users' folders shared with this mailbox
    # (RFC 4314), and the folders shared with the whole domain.
    others, shared = OTHER_USERS_NAMESPACE + DELIMITER, SHARED_NAMESPACE + DELIMITER
    await session.respond(
        u.Namespace((("", DELIMITER),), ((others, DELIMITER),), ((shared, DELIMITER),))
    )
    return r.OK_COMPLETED


# --- LIST -------------------------------------------------------------------------------


def mailbox_pattern(reference: str, pattern: str) -> MailboxPattern:
    """RFC 9051 6.3.9: "*" matches anything, "%" anything but the delimiter."""
    return MailboxPattern.compile(reference, pattern, delimiter=DELIMITER)


def _status_values(
    folder: Folder,
    items,
    *,
    recent: int | None = None,
    deleted: tuple[int, int] | None = None,
):
    values = []
    for item in items:
        if item == "MESSAGES":
            values.append((item, folder.message_count))
        elif item == "RECENT":
            values.append((item, recent or 0))
        elif item == "UIDNEXT":
            values.append((item, folder.uidnext))
        elif item == "UIDVALIDITY":
            values.append((item, folder.uidvalidity))
        elif item == "UNSEEN":
            values.append((item, folder.unseen_count))
        elif item == "SIZE":
            values.append((item, folder.total_size))
        elif item == "HIGHESTMODSEQ":
            values.append((item, folder.highestmodseq))
        elif item == "DELETED":
            values.append((item, deleted[0] if deleted else 0))
        elif item == "DELETED-STORAGE":
            # RFC 9208 4.4: what EXPUNGE would free, in the STORAGE resource's 1024 octets
            values.append((item, deleted[1] // 1024 if deleted else 0))
        elif item == "MAILBOXID":  # RFC 8474 4.3
            values.append((item, f"({objectid.mailbox_id(folder.id)})"))
        elif item == "APPENDLIMIT":
            values.append((item, settings.MAILHOST_MAX_MESSAGE_SIZE))
    return values


def _status_data(
    folder: Folder, items, reader: int | None = None
) -> tuple[int | None, tuple[int, int] | None]:
    """RECENT, and (count, octets) of \\Deleted messages, when the items ask for them; with
    a reader of another's folder, UNSEEN is made the reader's (on the folder row)."""
    if reader is not None and "UNSEEN" in items:
        selectors.reader_view(folder, reader)
    recent = (
        selectors.folder_count_from_uid(folder.id, folder.first_recent_uid)
        if "RECENT" in items
        else None
    )
    deleted = None
    if "DELETED" in items or "DELETED-STORAGE" in items:
        deleted = selectors.folder_deleted_totals(folder.id)
    return recent, deleted


def status_response(
    session: Session, folder: Folder, items, recent, deleted, name: str | None = None
) -> u.Status:
    values = _status_values(folder, items, recent=recent, deleted=deleted)
    return u.Status(name or folder.name, tuple(values), session.utf8)


def _status_of(mailbox_id: int, name: str, items):  # noqa: ANN001, ANN202
    """STATUS's reads in one hop: the folder the name means (None without one), and when
    the session may read it (RFC 4314 4: "r"), _status_data's values."""
    access = selectors.folder_access(mailbox_id, name)
    if access is None or "r" not in access.rights:
        return access, None, None
    return access, *_status_data(access.folder, items)


async def status(session: Session, command: p.Status) -> r.Reply | u.Done:
    # RFC 9051 6.3.11; SIZE RFC 8438; HIGHESTMODSEQ RFC 7162 3.1.8
    access, recent, deleted = await db(
        _status_of, session.mailbox.id, command.mailbox, command.items
    )
    if access is None:
        raise CommandError(r.NO_NONEXISTENT)
    if "r" not in access.rights:
        raise CommandError(r.NO_PERMISSION)
    folder = access.folder
    if "HIGHESTMODSEQ" in command.items:
        session.enable_condstore()
    await session.respond(
        status_response(session, folder, command.items, recent, deleted, access.name)
    )
    return r.OK_COMPLETED


def _list_data(
    mailbox_id: int, with_subscriptions: bool
) -> tuple[dict[str, Folder], set[str], dict[str, str]]:
    """The mailbox's folders and those shared with it (by the names it knows them by), its
    subscriptions, and the rights it holds on each shared one."""
    folders = {f.name: f for f in selectors.folders_listed(mailbox_id)}
    shared_rights = {}
    for access in selectors.shared_folders(mailbox_id):
        folders[access.name] = access.folder
        shared_rights[access.name] = access.rights
    subscriptions = selectors.subscriptions_of(mailbox_id) if with_subscriptions else set()
    return folders, subscriptions, shared_rights


def _ancestors(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:depth]) for depth in range(1, len(parts))]


async def list_command(session: Session, command: p.ListCommand) -> r.Reply | u.Done:
    # RFC 9051 6.3.9, LIST-EXTENDED RFC 5258, SPECIAL-USE RFC 6154, LIST-STATUS RFC 5819
    lsub = command.name == "LSUB"
    if command.patterns == ("",) and not command.extended:
        # The delimiter and root of the reference (RFC 9051 6.3.9 last paragraphs).
        await session.respond(
            u.ListItem(command.name, ("\\Noselect",), DELIMITER, "", session.utf8)
        )
        return r.OK_COMPLETED
    returns = command.returns
    selection = command.selection
    status_items = returns.status
    subscribed_only = lsub or "SUBSCRIBED" in selection
    want_subscribed = subscribed_only or returns.subscribed
    folders, subscriptions, shared_rights = await db(
        _list_data, session.mailbox.id, want_subscribed
    )
    # The levels above shared folders ("Other Users", "Other Users/<address>") are listed
    # as \\Noselect, so that a client walking the tree with "%" finds them (RFC 2342 3).
    namespace_levels = {a for name in shared_rights for a in _ancestors(name)}
    namespace_levels -= set(folders)
    matchers = [mailbox_pattern(command.reference, pat) for pat in command.patterns if pat != ""]
    special_only = "SPECIAL-USE" in selection
    recursive = "RECURSIVEMATCH" in selection
    lsub_parents = lsub and any("%" in pat for pat in command.patterns)
    if subscribed_only:
        # Subscribed names, folders or not (RFC 9051 6.3.9), and their parents where a
        # parent may be listed for its subscribed children (RFC 5258 3.5, RFC 3501 6.3.9).
        candidates = set(subscriptions)
        if recursive or lsub_parents:
            candidates.update(a for name in subscriptions for a in _ancestors(name))
    else:
        candidates = set(folders) | namespace_levels
    out: list = []
    status_wanted: list[tuple[str, Folder]] = []
    metadata_wanted: list[tuple[str, Folder]] = []
    for name in sorted(candidates):
        if not any(m.matches(name) for m in matchers):
            continue
        folder = folders.get(name)
        child_info = False
        lsub_noselect = False
        if subscribed_only and name not in subscriptions:
            prefix = name + DELIMITER
            subscribed_children = [s for s in subscriptions if s.startswith(prefix)]
            if recursive and any(
                not any(m.matches(child) for m in matchers) for child in subscribed_children
            ):
                # RFC 5258 3.5: a parent whose subscribed children the patterns miss.
                child_info = True
            elif lsub_parents and subscribed_children:
                # RFC 3501 6.3.9: "%" shows an unsubscribed parent of subscribed children.
                lsub_noselect = True
            else:
                continue
        if special_only and not (folder and folder.special_use):
            continue
        if lsub:
            # Without LIST-EXTENDED a name that is no folder is \Noselect (RFC 5258 3.4).
            attrs = ["\\Noselect"] if lsub_noselect or folder is None else []
        else:
            if name in namespace_levels:
                attrs = ["\\Noselect"]
            elif folder is None:
                attrs = ["\\NonExistent"]  # RFC 5258 3.4
            else:
                attrs = []
            prefix = name + DELIMITER
            has_children = any(n.startswith(prefix) for n in folders)
            attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
            if folder is not None and folder.special_use:  # RFC 6154 2: always
                attrs.append(folder.special_use)
            if want_subscribed and name in subscriptions:
                attrs.append("\\Subscribed")
        out.append(
            u.ListItem(
                command.name,
                tuple(attrs),
                DELIMITER,
                name,
                session.utf8,
                childinfo_subscribed=child_info,
            )
        )
        readable = "r" in shared_rights.get(name, "r")
        if status_items and folder is not None and not child_info and readable:
            status_wanted.append((name, folder))
            out.append(STATUS_SLOT)
        if returns.metadata and folder is not None and not child_info and readable:
            metadata_wanted.append((name, folder))
            out.append(METADATA_SLOT)
    if status_items:
        statuses = []
        for name, folder in status_wanted:
            reader = session.mailbox.id if folder.mailbox_id != session.mailbox.id else None
            recent, deleted = await db(_status_data, folder, status_items, reader)
            statuses.append(status_response(session, folder, status_items, recent, deleted, name))
        it = iter(statuses)
        out = [next(it) if response is STATUS_SLOT else response for response in out]
    if metadata_wanted:
        # LIST-METADATA (RFC 9590): a METADATA line after each folder's LIST (and STATUS)
        found = iter(
            await db(
                metadata.list_metadata,
                session.mailbox.id,
                metadata_wanted,
                returns.metadata,
                returns.metadata_maxsize,
            )
        )

        def fill(response):
            if response is not METADATA_SLOT:
                return response
            name, entries = next(found)
            return metadata.metadata_response(session, name, entries) if entries else None

        out = [fill(response) for response in out]
    await session.respond(*(response for response in out if response is not None))
    return r.OK_COMPLETED

"""NOTIFY (RFC 5465): which change events a session hears about beyond its selected folder,
and the responses they become.

The server hands a session every change event of the mailboxes it registered for (its own,
and the owners of folders shared with it); the session keeps them in `pending` and wakes.
`flush` runs when the session may send (IDLE, the end of a command: Session.sync_updates),
reads in one worker hop what the events changed, and sends STATUS for non-selected folders
(MessageNew, MessageExpunge, FlagChange), LIST for MailboxName and SubscriptionChange, and
METADATA for MailboxMetadataChange / ServerMetadataChange. The selected folder keeps its
ordinary EXISTS / EXPUNGE / FETCH (and MessageNew's FETCH attributes, RFC 5465 5.2)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mailboxes import selectors
from mailboxes.events import ChangeEvent
from mailboxes.models import HIERARCHY_DELIMITER, Folder
from protocols.imap import parser as p
from protocols.imap import untagged

logger = logging.getLogger(__name__)

SELECTED_FILTERS = ("SELECTED", "SELECTED-DELAYED")
MESSAGE_KINDS = {"exists": "MessageNew", "expunge": "MessageExpunge", "flags": "FlagChange"}


@dataclass
class NotifyState:
    groups: tuple[p.NotifyGroup, ...]
    owners: set[int]  # mailboxes whose events the server hands this session
    names: dict[int, str]  # folder id -> the name the client knows it by
    folders: dict[int, Folder]
    subscriptions: set[str]
    metadata: dict[int, dict[str, bytes]] = field(default_factory=dict)  # 0: the server
    pending: list[ChangeEvent] = field(default_factory=list)

    @property
    def selected_fetch(self) -> tuple[p.FetchItem, ...]:
        for group in self.groups:
            if group.filter in SELECTED_FILTERS and group.fetch:
                return group.fetch
        return ()

    def events_for(self, name: str) -> set[str]:
        """The events the client asked for on a non-selected folder of this name."""
        wanted: set[str] = set()
        for group in self.groups:
            if group.filter in SELECTED_FILTERS:
                continue
            if _matches(group, name, self.subscriptions):
                wanted.update(group.events)
        return wanted

    def server_events(self) -> set[str]:
        return {e for g in self.groups for e in g.events if e == "ServerMetadataChange"}


def _matches(group: p.NotifyGroup, name: str, subscriptions: set[str]) -> bool:
    # RFC 5465 6
    if group.filter == "INBOXES":
        return name == "INBOX"
    if group.filter == "PERSONAL":
        return selectors.shared_name_split(name) is None
    if group.filter == "SUBSCRIBED":
        return name in subscriptions
    if group.filter == "SUBTREE":
        return any(name == m or name.startswith(m + HIERARCHY_DELIMITER) for m in group.mailboxes)
    return name in group.mailboxes  # MAILBOXES


def snapshot(viewer_id: int, groups: tuple[p.NotifyGroup, ...]) -> NotifyState:
    """What NOTIFY SET starts from: the folders as the client knows them, its subscriptions,
    and the metadata it will hear changes of (worker thread)."""
    folders = {f.id: f for f in selectors.folders_of(viewer_id)}
    names = {fid: f.name for fid, f in folders.items()}
    owners = {viewer_id}
    for access in selectors.shared_folders(viewer_id):
        folders[access.folder.id] = access.folder
        names[access.folder.id] = access.name
        owners.add(access.folder.mailbox_id)
    state = NotifyState(groups, owners, names, folders, selectors.subscriptions_of(viewer_id))
    if any("MailboxMetadataChange" in g.events for g in groups):
        for fid, name in names.items():
            if "MailboxMetadataChange" in state.events_for(name):
                state.metadata[fid] = selectors.metadata_entries(viewer_id, folders[fid])
    if state.server_events():
        state.metadata[0] = selectors.metadata_entries(viewer_id, None)
    return state


def status_items(events: set[str]) -> tuple[str, ...]:
    """What STATUS tells of a folder not selected (RFC 5465 5.2-5.4), by the events asked
    for it, as Dovecot answers: MessageNew the counts and UIDNEXT, MessageExpunge the count,
    FlagChange HIGHESTMODSEQ (with UIDVALIDITY, which makes it comparable)."""
    wanted = set()
    if "MessageNew" in events:
        wanted |= {"MESSAGES", "UIDNEXT", "UIDVALIDITY"}
    if "MessageExpunge" in events:
        wanted.add("MESSAGES")
    if "FlagChange" in events:
        wanted |= {"UIDVALIDITY", "HIGHESTMODSEQ"}
    order = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ")
    return tuple(item for item in order if item in wanted)


def initial_status(viewer_id: int, state: NotifyState, selected_id: int | None):
    """NOTIFY SET STATUS (RFC 5465 3.1): each non-selected folder a message event is asked
    for, with its current row."""
    wanted = [
        fid
        for fid, name in state.names.items()
        if fid != selected_id and status_items(state.events_for(name))
    ]
    rows = selectors.folders_by_id(wanted)
    return [
        (state.names[fid], rows[fid]) for fid in sorted(wanted, key=state.names.get) if fid in rows
    ]


def read_changes(
    viewer_id: int, state: NotifyState, events: list[ChangeEvent], selected_id: int | None
) -> tuple[list[tuple[str, Folder]], list[tuple[tuple[str, ...], str, str | None]], list]:
    """What the events changed, read in one worker hop; updates the state's snapshots.

    Returns STATUS (name, folder row) pairs, LIST entries (attributes, name, old name), and
    METADATA (name, entry names) pairs."""
    kinds = {e.kind for e in events}
    statuses: dict[int, str] = {}
    lists: list[tuple[tuple[str, ...], str, str | None]] = []
    metadata: list[tuple[str, list[str]]] = []
    if "folders" in kinds:
        old_names = state.names
        fresh = snapshot(viewer_id, ())
        state.names, state.folders, state.owners = fresh.names, fresh.folders, fresh.owners
        for fid, name in sorted(state.names.items(), key=lambda item: item[1]):
            old = old_names.get(fid)
            if old == name:
                continue
            if "MailboxName" in state.events_for(name) or (
                old is not None and "MailboxName" in state.events_for(old)
            ):
                # RFC 5465 5.4: a new folder, or a renamed one with its OLDNAME (RFC 5258 3.6)
                lists.append(((), name, old))
        for fid, old in old_names.items():
            if fid not in state.names and "MailboxName" in state.events_for(old):
                lists.append((("\\NonExistent",), old, None))
    if "subscriptions" in kinds:
        now = selectors.subscriptions_of(viewer_id)
        for name in sorted(now ^ state.subscriptions):
            if "SubscriptionChange" in state.events_for(name):
                attrs = ("\\Subscribed",) if name in now else ()
                lists.append((attrs, name, None))
        state.subscriptions = now
    for event in events:
        name = state.names.get(event.folder_id)
        if event.kind in MESSAGE_KINDS and name is not None and event.folder_id != selected_id:
            if MESSAGE_KINDS[event.kind] in state.events_for(name):
                statuses[event.folder_id] = name
        elif event.kind == "metadata" and event.folder_id in state.metadata:
            folder = state.folders.get(event.folder_id) if event.folder_id else None
            if event.folder_id and folder is None:
                continue
            now = selectors.metadata_entries(viewer_id, folder)
            before = state.metadata[event.folder_id]
            changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
            state.metadata[event.folder_id] = now
            if changed:
                metadata.append((name if event.folder_id else "", changed))
    rows = selectors.folders_by_id(list(statuses))
    status = [(statuses[fid], rows[fid]) for fid in statuses if fid in rows]
    return status, lists, metadata


def list_response(
    attrs: tuple[str, ...], name: str, old: str | None, *, utf8: bool
) -> untagged.ListItem:
    """The LIST a mailbox event sends (RFC 5465 5.4), with OLDNAME after a rename."""
    return untagged.ListItem("LIST", tuple(attrs), HIERARCHY_DELIMITER, name, utf8, oldname=old)

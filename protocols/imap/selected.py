"""The selected state (RFC 9051 3.3): the folder a session has selected, its view of it, and
the responses that change that view (FLAGS when a keyword is new, EXPUNGE or VANISHED).

The session holds one Selected while in the selected state; the command handlers and the
session's update code read and change it here, and send the responses it returns.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailboxes import ascending
from mailboxes.folders import ACL_RIGHTS
from protocols.imap import contexts as update_contexts
from protocols.imap import parser as p
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.errors import CommandError
from protocols.imap.flags import COMMON_KEYWORDS, FLAGS_LINE_BASE

if TYPE_CHECKING:
    from protocols.imap.commands.select import SelectView


# Shared, never changed: a selection's sets start as this and are replaced, not changed, so
# that thousands of idle sessions do not each hold empty sets (issue 22).
NONE: frozenset = frozenset()
# The keywords FLAGS responses listed: one object for the sessions that announced the same.
_announced: dict[frozenset[str], frozenset[str]] = {}


def _shared(keywords: set[str]) -> frozenset[str]:
    if len(_announced) > 1000:
        _announced.clear()
    key = frozenset(keywords)
    return _announced.setdefault(key, key)


@dataclass(slots=True)
class Selected:
    folder_id: int
    name: str
    uidvalidity: int
    readonly: bool
    known_modseq: int
    # Expunges up to here are reported; with view_uidnext, the view the client was told of.
    expunge_modseq: int
    view_uidnext: int  # UIDs from here on are new to the client (not yet in an EXISTS)
    count: int  # EXISTS while the sequence map is not read
    # seq -> uid: 4 bytes per message (a 100k-message folder costs 400 kB per session),
    # None until a command needs sequence numbers (Session.sequence_map).
    uids: array | None = None
    # \Recent: the UIDs claimed at SELECT are a range (how many of them: recent_at_select)
    # until the map is read; `recent` holds the rest (and all of them once the map is read).
    recent_range: tuple[int, int] = (0, 0)
    recent_at_select: int = 0
    recent: AbstractSet[int] = NONE
    # Keywords of the folder, shared by every session of this process that selected it
    # (so no FLAGS response ever drops one another session announced), and the keywords
    # this session's last FLAGS response listed.
    keywords: set[str] = field(default_factory=set)
    announced: frozenset[str] = NONE
    dirty: bool = False
    # What changed since known_modseq, read in the hop of the command's own write
    # (Session.db_and_changes): the next sync_updates sends it instead of asking again.
    prefetched: tuple | None = None
    # Highest MODSEQ named by a change event since the session last cleared `dirty`: a
    # change at or below the MODSEQ it has read up to is no reason to read again.
    event_modseq: int = 0
    # (uid -> highest modseq) this session already showed itself (STORE), not repeated by sync
    reported: dict[int, int] = field(default_factory=dict)
    # UIDs expunged elsewhere while EXPUNGE could not be sent yet
    pending_expunge: AbstractSet[int] = NONE
    saved: list[int] | None = None  # SEARCHRES "$" (RFC 5182), as UIDs
    # SEARCH/SORT RETURN (UPDATE) contexts by their command's tag (RFC 5267 4.3): they end
    # with the selection
    contexts: dict[str, update_contexts.UpdateContext] = field(default_factory=dict)
    # RFC 4314: the session's rights on the folder (all of them on its own), and the
    # mailbox that owns it (another's, for a shared folder)
    rights: str = ACL_RIGHTS
    owner_id: int = 0
    # The session's mailbox when the folder is another's: its \Seen is its own (PrivateSeen),
    # and every flag read and write passes it to the store; None on its own folder.
    reader: int | None = None

    @classmethod
    def of_view(cls, view: SelectView, keywords: set[str]) -> Selected:
        """The state SELECT enters, from its select_view read (the folder row's counters and
        bounds: no per-message read) and the folder's keywords as this process knows them."""
        folder, access = view.folder, view.access
        return cls(
            folder_id=folder.id,
            name=access.name if access is not None else folder.name,
            uidvalidity=folder.uidvalidity,
            readonly=view.readonly,
            known_modseq=folder.highestmodseq,
            expunge_modseq=folder.highestmodseq,
            view_uidnext=folder.uidnext,
            count=folder.message_count,
            recent_range=view.recent,
            recent_at_select=view.recent_at_select,
            keywords=keywords,
            rights=access.rights if access is not None else ACL_RIGHTS,
            owner_id=folder.mailbox_id,
            reader=access.reader if access is not None else None,
        )

    def require(self, right: str) -> None:
        """NO [NOPERM] unless the session holds the right on the selected folder."""
        if right not in self.rights:
            raise CommandError(r.NO_PERMISSION)

    @property
    def exists(self) -> int:
        return self.count if self.uids is None else len(self.uids)

    @property
    def recent_count(self) -> int:
        if self.uids is None:
            return self.recent_at_select + len(self.recent)
        return len(self.recent)

    def add_recent(self, uids) -> None:
        """These UIDs are \\Recent in this session (its own set from the first one on)."""
        uids = list(uids)
        if not uids:
            return
        if not isinstance(self.recent, set):
            self.recent = set(self.recent)
        self.recent.update(uids)

    def seqs_of(self, uids) -> list[int | None]:
        """Sequence numbers of ascending UIDs (None where not in the map)."""
        return seqs_in(self.uids, uids)

    def seq_of(self, uid: int) -> int | None:
        """The message's sequence number (the map must be read: Session.sequence_map)."""
        return seq_in(self.uids, uid)

    def expunged_unannounced(self, gone_uids) -> bool:
        """Whether messages of this view were expunged and not announced yet (`gone_uids`:
        expunged since the view was last brought up to date). A command that may not
        announce them (RFC 9051 7.5.1) did not see them: RFC 5530 3's EXPUNGEISSUED says so."""
        return bool(self.pending_expunge) or any(self.seq_of(uid) is not None for uid in gone_uids)

    def flag_names(self, uid: int, flags: list[str], *, rev2: bool) -> list[str]:
        """A message's flags as FETCH shows them: \\Recent added before IMAP4rev2."""
        if uid in self.recent and not rev2:
            return [*flags, "\\Recent"]
        return flags

    def flags_response(self) -> u.Flags:
        """FLAGS: the system flags, the common keywords and the folder's (RFC 9051 7.3.5);
        they count as announced from here on."""
        keywords = set(COMMON_KEYWORDS) | self.keywords
        self.announced = _shared(keywords)
        return u.Flags((*FLAGS_LINE_BASE, *sorted(keywords)))

    def keyword_update(self, flags) -> list[u.Flags]:
        """A FLAGS response when `flags` use a keyword this client has not been told of
        (RFC 9051 7.3.5: FLAGS lists every flag in use); none otherwise."""
        new = {f for f in flags if not f.startswith("\\")} - self.announced
        if not new:
            return []
        self.keywords |= new
        return [self.flags_response()]

    def expunge(
        self, gone_uids, *, vanished: bool, rev2: bool
    ) -> list[u.ESearch | u.Expunge | u.Vanished | u.Recent]:
        """Remove UIDs from the view and return the EXPUNGE (or VANISHED) responses, after
        the update contexts' REMOVEFROM; before IMAP4rev2, RECENT after them when \\Recent
        messages went (RFC 3501 7.3.2: RECENT follows a change of the mailbox's size, and a
        client keeps the count it was last told: imaptest's checkpoint adds them up)."""
        gone = {uid for uid in gone_uids if self.seq_of(uid) is not None}
        if not gone:
            return []
        trailer = []
        if self.recent and not self.recent.isdisjoint(gone):
            self.recent -= gone
            if not rev2:
                trailer = [u.Recent(len(self.recent))]
        # RFC 5267 4.3.4: a context's REMOVEFROM before the expunge, numbered as before it
        removals = []
        for context in self.contexts.values():
            removes = update_contexts.removal_pairs(context, gone)
            number = update_contexts.numbering(context, self.seq_of)
            removal = update_contexts.update_esearch(context, removes, [], number)
            if removal is not None:
                removals.append(removal)
        if vanished:
            # RFC 7162 3.2.10, RFC 9586 3.4: VANISHED replaces EXPUNGE once QRESYNC or
            # UIDONLY is enabled (Session.vanished).
            responses = [u.Vanished(sorted(gone))]
        else:
            # Highest first: removing a message renumbers only those after it, so each
            # number sent is the message's number at that moment (RFC 9051 7.5.1).
            responses = [u.Expunge(self.seq_of(uid)) for uid in sorted(gone, reverse=True)]
        # One pass, however many went (deleting one by one from a 100k map is quadratic).
        self.uids = array("I", (uid for uid in self.uids if uid not in gone))
        return removals + responses + trailer


def seqs_in(mapped: array, uids) -> list[int | None]:  # noqa: ANN001
    """Sequence numbers in a seq -> UID map of ascending UIDs (None where not in it): the
    map's stretches without gaps give them by subtraction (mailboxes.ascending; a walk of
    the map took 10-15 ms for 44,624 UIDs of 100k)."""
    return ascending.positions(mapped, uids, base=1)


def seq_in(mapped: array, uid: int) -> int | None:
    """The message's sequence number in a seq -> UID map, or None."""
    i = bisect.bisect_left(mapped, uid)
    return i + 1 if i < len(mapped) and mapped[i] == uid else None


def recent_in_map(uids: array, recent_range: tuple[int, int]) -> array:
    """The map's UIDs in the range claimed \\Recent at SELECT."""
    low, high = recent_range
    return uids[bisect.bisect_left(uids, low) : bisect.bisect_left(uids, high)]


def resolve_in(
    uids: array, sequence: p.SequenceSet, *, uid: bool, saved: list[int] | None
) -> list[int]:
    """Session.resolve on a given map (`saved`: the session's SEARCHRES UIDs): pure, so that
    a command may run it in the worker hop that reads the map."""
    if sequence.saved:
        if saved is None:
            return []
        return [u for u in saved if seq_in(uids, u) is not None]
    if not uids:
        if not uid and any(low != p.STAR and high != p.STAR for low, high in sequence.ranges):
            raise CommandError(r.BAD_INVALID_SEQUENCE)
        return []
    result: list[int] = []
    if uid:
        largest = uids[-1]
        for low, high in sequence.resolve(largest):
            start = bisect.bisect_left(uids, low)
            end = bisect.bisect_right(uids, high)
            result.extend(uids[start:end])
    else:
        count = len(uids)
        for low, high in sequence.resolve(count):
            if low < 1 or high > count:
                raise CommandError(r.BAD_INVALID_SEQUENCE)
            result.extend(uids[low - 1 : high])
    if len(sequence.ranges) > 1:
        result = sorted(set(result))
    return result

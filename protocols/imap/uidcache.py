"""A per-process cache of folders' UID lists, so a session's sequence map is read cheaply.

A session's sequence-number -> UID map is the folder as the client was last told of it: a
*view* (MODSEQ, UIDNEXT) is every UID below UIDNEXT that no expunge at or before MODSEQ
removed. Messages expunged later are still in it (their EXPUNGE is yet to be sent), messages
that arrived later are not (their EXISTS is yet to be sent). SELECT answers from the folder
row's counters and builds no map; the first command that needs sequence numbers reads the
view of the folder row it selected, however much has changed since.

A view is the current rows below UIDNEXT plus the Expunged tombstones above MODSEQ (every
removal writes a tombstone with a new MODSEQ: mailboxes/services.py). An entry holds one
view; another view is derived from it with one tombstone query (MODSEQ-indexed) and, going
forward, one query for the UIDs in between (UID-indexed), instead of re-reading the folder.
Rows are always read before tombstones, so a message expunged between the two reads is in
one or the other, never lost.
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections import OrderedDict

from mailboxes import selectors

MAX_FOLDERS = 256  # about 400 KB per 100k-message folder

_lock = threading.Lock()
_entries: OrderedDict[int, tuple[int, int, array]] = OrderedDict()


def folder_uids(folder_id: int, modseq: int, uidnext: int) -> array:
    """The folder's view (modseq, uidnext): its UIDs in ascending order (a fresh copy)."""
    with _lock:
        entry = _entries.get(folder_id)
        if entry is not None:
            _entries.move_to_end(folder_id)
    if entry is not None:
        cached_modseq, cached_uidnext, cached = entry
        if (cached_modseq, cached_uidnext) == (modseq, uidnext):
            return array("I", cached)
        if cached_modseq <= modseq and cached_uidnext <= uidnext:
            uids = _forward(folder_id, cached_modseq, cached_uidnext, cached, modseq, uidnext)
            _remember(folder_id, modseq, uidnext, uids)
            return uids
        if cached_modseq >= modseq and cached_uidnext >= uidnext:
            return _backward(folder_id, cached_modseq, cached, modseq, uidnext)
    uids = array("I", selectors.folder_uids_between(folder_id, 1, uidnext))
    late = [uid for uid, _ in selectors.folder_expunged_since(folder_id, modseq) if uid < uidnext]
    if late:
        uids = array("I", sorted(set(uids).union(late)))
    if entry is None or (modseq, uidnext) > entry[:2]:
        _remember(folder_id, modseq, uidnext, uids)
    return uids


def _forward(folder_id, cached_modseq, cached_uidnext, cached, modseq, uidnext) -> array:
    arrived = selectors.folder_uids_between(folder_id, cached_uidnext, uidnext)
    gone = set()
    late = []  # arrived after the cached view, expunged after the wanted one
    for uid, when in selectors.folder_expunged_since(folder_id, cached_modseq):
        if when <= modseq:
            gone.add(uid)
        elif cached_uidnext <= uid < uidnext:
            late.append(uid)
    uids = array("I", (u for u in cached if u not in gone)) if gone else array("I", cached)
    uids.extend(sorted(set(arrived).union(late)) if late else arrived)
    return uids


def _backward(folder_id, cached_modseq, cached, modseq, uidnext) -> array:
    # Expunged after the wanted view and up to the cached one: still in the wanted view.
    back = {
        uid
        for uid, when in selectors.folder_expunged_since(folder_id, modseq)
        if when <= cached_modseq and uid < uidnext
    }
    below = cached[: bisect.bisect_left(cached, uidnext)]
    if not back:
        return array("I", below)
    return array("I", sorted(back.union(below)))


def _remember(folder_id: int, modseq: int, uidnext: int, uids: array) -> None:
    with _lock:
        _entries[folder_id] = (modseq, uidnext, array("I", uids))
        _entries.move_to_end(folder_id)
        while len(_entries) > MAX_FOLDERS:
            _entries.popitem(last=False)


def clear() -> None:
    with _lock:
        _entries.clear()

"""A per-process cache of each folder's UID list, so SELECT does not read every row each time.

SELECT needs the whole sequence-number -> UID map; on a 100k-message folder reading it costs
hundreds of milliseconds (bench/run.py). An entry holds the list as of the folder row's
(HIGHESTMODSEQ, UIDNEXT). A later SELECT with the same pair reuses it; with a newer pair it is
brought forward cheaply from the Expunged tombstones (MODSEQ-indexed) and the new UIDs
(UID-indexed), instead of re-reading the folder.

Every removal writes a tombstone with a new MODSEQ and every new message takes a new UID and
MODSEQ (mailboxes/services.py), so an unchanged pair means an unchanged list. Applying a
tombstone twice is harmless, so a list read a moment after its folder row was read stays
correct when brought forward.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict

from django.db import connection

from mailboxes.models import Expunged, Message

MAX_FOLDERS = 256  # about 400 KB per 100k-message folder

_lock = threading.Lock()
_entries: OrderedDict[int, tuple[int, int, array]] = OrderedDict()


def folder_uids(folder_id: int, highestmodseq: int, uidnext: int) -> array:
    """The folder's UIDs (ascending) as of the folder row (highestmodseq, uidnext)."""
    with _lock:
        entry = _entries.get(folder_id)
        if entry is not None:
            _entries.move_to_end(folder_id)
    if entry is not None:
        cached_modseq, cached_uidnext, cached = entry
        if (cached_modseq, cached_uidnext) == (highestmodseq, uidnext):
            return array("I", cached)
        if cached_modseq < highestmodseq and cached_uidnext <= uidnext:
            gone = set(_uids(Expunged, folder_id, "modseq", cached_modseq + 1, highestmodseq + 1))
            uids = array("I", (u for u in cached if u not in gone)) if gone else array("I", cached)
            uids.extend(_uids(Message, folder_id, "uid", cached_uidnext, uidnext))
            _remember(folder_id, highestmodseq, uidnext, uids)
            return array("I", uids)
    uids = array("I", _uids(Message, folder_id, "uid", 1, uidnext))
    _remember(folder_id, highestmodseq, uidnext, uids)
    return array("I", uids)


def _uids(model, folder_id: int, column: str, low: int, high: int) -> list[int]:
    # Raw SQL: Django's per-row machinery costs more than the query on 100k rows.
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT uid FROM {table} WHERE folder_id = %s AND {column} >= %s AND {column} < %s"
            " ORDER BY uid",
            [folder_id, low, high],
        )
        return [row[0] for row in cursor.fetchall()]


def _remember(folder_id: int, highestmodseq: int, uidnext: int, uids: array) -> None:
    with _lock:
        _entries[folder_id] = (highestmodseq, uidnext, array("I", uids))
        _entries.move_to_end(folder_id)
        while len(_entries) > MAX_FOLDERS:
            _entries.popitem(last=False)


def clear() -> None:
    with _lock:
        _entries.clear()

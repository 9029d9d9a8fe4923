"""Search and sort contexts kept up to date (RFC 5267 4.3, CONTEXT=SEARCH and CONTEXT=SORT):
what a SEARCH or SORT with RETURN (UPDATE) remembers, how its result changes become ADDTO and
REMOVEFROM pairs, and the ESEARCH responses that carry them. Sans-IO: the session and
commands/contexts.py feed it results and send what it returns."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key

from django.conf import settings

from protocols.imap import responses as r
from protocols.imap import untagged
from protocols.imap.errors import CommandError
from protocols.imap.search import sequence_set_text, uses_saved, uses_sequence_numbers
from protocols.imap.sort import ordered_set_text, sort_before, sort_position

# A pair of an ADDTO or REMOVEFROM item: (context position, numbers in the context's order).
Pair = tuple[int, list[int]]

BAD_TAG_IN_USE = r.Reply("BAD", "Tag already names an update context")  # RFC 5267 4.3


@dataclass
class UpdateContext:
    """One RETURN (UPDATE) command's live result, until CANCELUPDATE or the mailbox is left."""

    tag: str
    key: object  # the parsed search keys
    uid: bool  # UID SEARCH / UID SORT: updates in UIDs, else in sequence numbers
    sort_keys: tuple | None  # None for SEARCH: mailbox order, every position 0
    results: list[int]  # UIDs, in the context's order
    # SORT: each result's sort value, in the same order (sort.sort_rows_keyed), by which a
    # message that joins is placed without sorting the result again
    values: list = field(default_factory=list)
    # Sequence-number keys or "$": a change to one message can change whether another
    # matches, so every change re-evaluates the whole view.
    whole_view: bool = False
    members: set[int] = field(default_factory=set)  # the UIDs of results

    def __post_init__(self) -> None:
        self.members = set(self.results)

    @property
    def sorted(self) -> bool:
        return self.sort_keys is not None

    @property
    def reverses(self) -> tuple[bool, ...]:
        return tuple(getattr(key, "reverse", False) for key in self.sort_keys or ())


def check_tag(live: dict[str, UpdateContext], tag: str) -> None:
    """RFC 5267 4.3: UPDATE under a tag a live context already uses SHALL get BAD."""
    if tag in live:
        raise CommandError(BAD_TAG_IN_USE)


def open_context(
    live: dict[str, UpdateContext],
    tag: str,
    key: object,
    *,
    uid: bool,
    results: list[int],
    sort_keys: tuple | None = None,
    values: list | None = None,
) -> r.Reply | None:
    """Open the context of a SEARCH or SORT with RETURN (UPDATE) among the selection's live
    ones; over MAILHOST_IMAP_MAX_UPDATE_CONTEXTS, the untagged `NO [NOUPDATE "tag"]` to
    send instead (RFC 5267 4.3.1: the other return options are answered all the same)."""
    if len(live) >= settings.MAILHOST_IMAP_MAX_UPDATE_CONTEXTS:
        code = "NOUPDATE " + r.quoted_or_literal(tag).decode("ascii")
        return r.Reply("NO", "Too many update contexts", code)
    live[tag] = UpdateContext(
        tag=tag,
        key=key,
        uid=uid,
        sort_keys=sort_keys,
        results=list(results),
        values=list(values or ()),
        whole_view=uses_sequence_numbers(key) or uses_saved(key),
    )
    return None


def start(live: dict[str, UpdateContext], tag: str, key: object, **kwargs) -> bytes:
    """open_context, its refusal as the client reads it (b"" when opened)."""
    refusal = open_context(live, tag, key, **kwargs)
    return refusal.untagged() if refusal is not None else b""


def delta(
    context: UpdateContext, matched: Iterable[int], checked: Iterable[int]
) -> tuple[set[int], set[int]]:
    """(left, joined): of the `checked` UIDs, those in the result that no longer match and
    those that match and were not in it. Costs the size of `checked`, not of the result."""
    matched = set(matched)
    left = {uid for uid in checked if uid in context.members and uid not in matched}
    return left, matched - context.members


def removal_pairs(context: UpdateContext, gone: Iterable[int]) -> list[Pair]:
    """REMOVEFROM pairs taking `gone` out of the context's result (RFC 5267 4.3.4), in UIDs,
    and the result updated. SEARCH: position 0 and the set in mailbox order; SORT: each run of
    neighbours at the position its first holds once the runs before it are removed."""
    gone = {uid for uid in gone if uid in context.members}
    if not gone:
        return []
    context.members -= gone
    if not context.sorted:
        removed = sorted(gone)
        for uid in removed:  # the result is in UID order
            del context.results[bisect.bisect_left(context.results, uid)]
        return [(0, removed)]
    old, values = context.results, context.values
    kept_values = len(values) == len(old)
    places = [index for index, uid in enumerate(old) if uid in gone]
    if len(places) * 16 < len(old):  # a few: deleting in place beats copying the rest
        context.results = list(old)
        for index in reversed(places):
            del context.results[index]
            if kept_values:
                del values[index]
    else:
        context.results = [uid for uid in old if uid not in gone]
        if kept_values:
            context.values = [value for uid, value in zip(old, values) if uid not in gone]
    pairs: list[Pair] = []
    taken = 0
    run: list[int] = []
    start = 0
    for index, uid in enumerate(old):
        if uid in gone:
            if not run:
                start = index + 1 - taken
            run.append(uid)
            continue
        if run:
            pairs.append((start, run))
            taken += len(run)
            run = []
    if run:
        pairs.append((start, run))
    return pairs


def addition_pairs(
    context: UpdateContext,
    added: set[int],
    ordered: list[int] | None = None,
    values: Sequence | dict[int, object] | None = None,
) -> list[Pair]:
    """ADDTO pairs putting `added` into the context's result (RFC 5267 4.3.3), and the
    result updated. SEARCH: position 0, the set in mailbox order. SORT: `values` maps each
    added UID to its sort value, and each goes in by binary search (sort.sort_position);
    or `ordered` is the whole new result in sort order with `values` its sort values (every
    UID kept in the same order as before). Each run of additions goes at its position in
    the new result (applied in order, everything before a run is in place)."""
    if not added:
        return []
    if not context.sorted:
        for uid in sorted(added):
            bisect.insort(context.results, uid)
        context.members |= added
        return [(0, sorted(added))]
    if ordered is None:
        places = _insert_sorted(context, added, values)
    else:
        context.results = list(ordered)
        context.values = list(values or ())
        context.members = set(ordered)
        places = [index for index, uid in enumerate(ordered) if uid in added]
    pairs: list[Pair] = []
    for index in places:
        if pairs and pairs[-1][0] + len(pairs[-1][1]) == index + 1:
            pairs[-1][1].append(context.results[index])
        else:
            pairs.append((index + 1, [context.results[index]]))
    return pairs


def _insert_sorted(context: UpdateContext, added: set[int], values: dict) -> list[int]:
    """Insert the added UIDs at their places in the sorted result; their indexes there,
    ascending. Inserted in sort order, each lands after those before it, so the index it
    gets is its index in the final result."""
    reverses = context.reverses
    single = len(reverses) == 1
    mine = sorted(
        added,
        key=cmp_to_key(
            lambda a, b: (
                -1 if sort_before(values[a], a, values[b], b, reverses, single=single) else 1
            )
        ),
    )
    places = []
    for uid in mine:
        value = values[uid]
        index = sort_position(context.results, context.values, reverses, uid, value)
        context.results.insert(index, uid)
        context.values.insert(index, value)
        places.append(index)
    context.members |= added
    return places


def numbering(
    context: UpdateContext, seq_of: Callable[[int], int | None]
) -> Callable[[int], int | None]:
    """What the context's client counts in: UIDs, or sequence numbers (RFC 5267 4.3.2)."""
    return (lambda uid: uid) if context.uid else seq_of


def update_response(
    context: UpdateContext,
    removes: Sequence[Pair],
    adds: Sequence[Pair],
    number: Callable[[int], int | None],
) -> bytes:
    """update_esearch as the client reads it (b"" when nothing changed)."""
    response = update_esearch(context, removes, adds, number)
    return untagged.wire([response]) if response is not None else b""


def update_esearch(
    context: UpdateContext,
    removes: Sequence[Pair],
    adds: Sequence[Pair],
    number: Callable[[int], int | None],
) -> untagged.ESearch | None:
    """`* ESEARCH (TAG "t") [UID] REMOVEFROM (pos set ...) ADDTO (pos set ...)` (RFC 5267 5);
    `number` turns a UID into what the client counts in (itself, or its sequence number now).
    None when nothing changed."""
    data = []
    for name, pairs in (("REMOVEFROM", removes), ("ADDTO", adds)):
        items = []
        for position, uids in pairs:
            numbers = [n for n in map(number, uids) if n is not None]
            if numbers:
                # SORT keeps its order, ascending runs as ranges (RFC 5267 3.2)
                text = ordered_set_text(numbers) if context.sorted else sequence_set_text(numbers)
                items.append(f"{position} {text}")
        if items:
            data.append((name, f"({' '.join(items)})"))
    if not data:
        return None
    return untagged.ESearch(context.tag, context.uid, tuple(data))

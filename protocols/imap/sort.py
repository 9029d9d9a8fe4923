"""SORT and THREAD (RFC 5256), ESORT's RETURN and PARTIAL (RFC 5267, RFC 9394), SORT=DISPLAY
(RFC 5957): sans-IO.

Everything here works on the header fields cached in the Message rows at delivery
(mailboxes/headers.py: the decoded, space-folded Subject; the first From address; the From,
To and Cc fields as "Name <address>, ..." text; the Date header as a datetime; Message-ID,
In-Reply-To and References), read by mailboxes.selectors.message_sort_rows: a SORT of a
100k-message folder reads columns, never a blob.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter

from protocols.imap import untagged
from protocols.imap.search import partial_slice, uid_ranges

SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")

# The Message columns each key reads (after the uid).
KEY_COLUMNS = {
    "ARRIVAL": ("internal_date",),
    "DATE": ("sent_date", "internal_date"),
    "SIZE": ("size",),
    "SUBJECT": ("subject",),
    "FROM": ("from_display",),
    "DISPLAYFROM": ("from_display",),
    "TO": ("to_display",),
    "DISPLAYTO": ("to_display",),
    "CC": ("cc_display",),
}
THREAD_COLUMNS = (
    "sent_date",
    "internal_date",
    "subject",
    "message_id",
    "in_reply_to",
    "references",
)


class SortSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class SortKey:
    name: str
    reverse: bool = False


def parse_criteria(words: Sequence[str]) -> tuple[SortKey, ...]:
    """sort-criterion *(SP sort-criterion), each ["REVERSE" SP] sort-key (RFC 5256 4)."""
    keys: list[SortKey] = []
    reverse = False
    for word in words:
        word = word.upper()
        if word == "REVERSE" and not reverse:
            reverse = True
        elif word in SORT_KEYS:
            keys.append(SortKey(word, reverse))
            reverse = False
        else:
            raise SortSyntaxError(f"Unknown sort key {word}")
    if reverse or not keys:
        raise SortSyntaxError("Sort criteria incomplete")
    return tuple(keys)


def columns_for(keys: Iterable[SortKey]) -> tuple[str, ...]:
    columns: list[str] = []
    for key in keys:
        columns.extend(c for c in KEY_COLUMNS[key.name] if c not in columns)
    return tuple(columns)


# --- The cyclic garbage collector ------------------------------------------------------------

_paused = 0
_was_enabled = False
_off_since = 0.0
_pause_lock = threading.Lock()
# Overlapping pauses (many sessions sorting large folders) could keep the collector off for
# good: the pause that ends after this long with others still running collects once.
PAUSE_LIMIT = 5.0


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a SORT or THREAD reads and orders a large
    folder: 100k rows and thread containers are hundreds of thousands of new container
    objects, and the collections they set off (each full one walking every object of the
    process) cost THREAD more CPU than the algorithm itself. Reference counting still frees
    what is dropped; the collector runs again when the last overlapping user is done."""
    global _paused, _was_enabled, _off_since
    with _pause_lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            _off_since = time.monotonic()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        collect = False
        with _pause_lock:
            _paused -= 1
            if _paused == 0:
                if _was_enabled:
                    gc.enable()
            elif _was_enabled and time.monotonic() - _off_since > PAUSE_LIMIT:
                _off_since, collect = time.monotonic(), True
        if collect:
            gc.collect()


# --- Collation and base subject -------------------------------------------------------------

# i;ascii-casemap (RFC 4790 9.2): a-z become A-Z, every other octet stays; comparing the
# resulting str by code point is comparing its UTF-8 octets.
_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def casemap(text: str) -> str:
    return text.translate(_ASCII_UPPER)


_WSP = " \t"
_BLOB = re.compile(r"\[[^\[\]\x00]*\][ \t]*")
# subj-leader without its WSP branch: *subj-blob subj-refwd (RFC 5256 5)
_LEADER = re.compile(
    r"(?:\[[^\[\]\x00]*\][ \t]*)*(?:re|fwd?)[ \t]*(?:\[[^\[\]\x00]*\][ \t]*)?:", re.IGNORECASE
)


# What a subject that steps (2)-(6) change starts or ends with: whitespace, a blob or
# "[fwd:", "re" or "fw"; whitespace or "(fwd)".
_MAY_LEAD = " \t[rRfF"
_MAY_TRAIL = " \t)"


def base_subject(subject: str) -> tuple[str, bool]:
    """RFC 5256 2.1: the base subject, and whether the subject marked a reply or forward.

    `subject` is already step (1): RFC 2047 words decoded, whitespace runs one space (the
    cached Message.subject). Returned as is (compare through casemap)."""
    if subject and subject[0] not in _MAY_LEAD and subject[-1] not in _MAY_TRAIL:
        return subject, False  # no leader, blob, "[fwd:", "(fwd)" or whitespace to remove
    text = subject
    reply = False
    while True:
        # (2) trailing "(fwd)" and whitespace
        while True:
            text = text.rstrip(_WSP)
            if text[-5:].lower() == "(fwd)":
                text = text[:-5]
                reply = True
                continue
            break
        # (3) leaders, (4) a blob that does not leave the subject empty, (5) again
        while True:
            changed = False
            while True:
                stripped = text.lstrip(_WSP)
                if stripped != text:
                    text, changed = stripped, True
                match = _LEADER.match(text)
                if match is None:
                    break
                text, changed, reply = text[match.end() :], True, True
            match = _BLOB.match(text)
            if match is not None and text[match.end() :]:
                text, changed = text[match.end() :], True
            if not changed:
                break
        # (6) "[fwd:" ... "]": remove and start again at (2)
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            reply = True
            continue
        return text, reply


# --- Address keys ---------------------------------------------------------------------------

_NAMED = re.compile(r"(.*?) <([^<>]*)>(?:, |$)", re.DOTALL)


def first_address(display: str) -> tuple[str, str]:
    """(display name, address) of the first entry of a cached "Name <address>, ..." field
    (mailboxes/headers.py _addresses_display): either may be empty."""
    if not display:
        return "", ""
    head = display.split(", ", 1)[0]
    if "<" not in head and " " not in head and "@" in head:
        return "", head  # a bare address
    if head.endswith(":") and "<" not in head:
        # groups come last: a field whose first entry is one had no address before it, so
        # the group is its first "address" (mailbox the group name, RFC 9051 7.5.2)
        return "", head[:-1]
    match = _NAMED.match(display)
    if match is not None:
        return match.group(1), match.group(2)
    if " " not in head:
        return "", head  # a local part without a domain
    return head, ""


def display_ambiguous(display: str) -> bool:
    """The cached text lists groups after the addresses: when it holds both, which came
    first is in the header alone (header_first_address)."""
    return display.endswith(":") and not display.split(", ", 1)[0].endswith(":")


def header_first_address(raw: bytes, field_name: str) -> tuple[str, str]:
    """(display name, address) of the first address of the message's field, read from its
    header: a group's start counts, as its name (RFC 9051 7.5.2)."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    from mailboxes import addresslist
    from mailboxes.headers import decode_words, header_block, header_text

    parsed = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
    for value in parsed.get_all(field_name) or []:
        data = header_text(value).encode("utf-8", "surrogateescape")
        for name, _adl, mailbox, host in addresslist.parse_addresses(data, limit=len(data)):
            if mailbox is None:
                continue
            text = mailbox.decode("utf-8", "replace")
            if host is None:
                return "", text
            if mailbox == addresslist.MISSING_MAILBOX:
                text = ""
            if text and host != addresslist.MISSING_DOMAIN:
                text += "@" + host.decode("utf-8", "replace")
            label = decode_words(name.decode("utf-8", "replace")) if name else ""
            return label, text
    return "", ""


def addr_mailbox(address: str) -> str:
    """The local part of local@domain (RFC 5256 4: FROM/TO/CC sort on addr-mailbox)."""
    return address.rpartition("@")[0] if "@" in address else address


def display_key(first: tuple[str, str]) -> str:
    """RFC 5957: the display name of the first address, else the address itself."""
    name, address = first
    return name if name.strip() else address


def _memo(function):
    """function(value) once per distinct value: a folder's subjects and senders repeat."""
    cache: dict = {}

    def lookup(value):
        found = cache.get(value)
        if found is None:
            found = cache[value] = function(value)
        return found

    return lookup


def _key_function(key: SortKey, index: dict[str, int], overrides: dict):
    name = key.name
    if name == "ARRIVAL":
        i = index["internal_date"]
        return lambda row: row[i]
    if name == "DATE":
        i, j = index["sent_date"], index["internal_date"]
        return lambda row: row[i] or row[j]
    if name == "SIZE":
        i = index["size"]
        return lambda row: row[i]
    if name == "SUBJECT":
        i = index["subject"]
        subject_key = _memo(lambda text: casemap(base_subject(text)[0]))
        return lambda row: subject_key(row[i])
    column = ADDRESS_COLUMNS[name]
    i = index[column]
    exact = overrides.get(column, {})

    if name in ("FROM", "TO", "CC"):
        of_text = _memo(lambda text: casemap(addr_mailbox(first_address(text)[1])))
        of_pair = lambda pair: casemap(addr_mailbox(pair[1]))  # noqa: E731
    else:
        of_text = _memo(lambda text: casemap(display_key(first_address(text))))
        of_pair = lambda pair: casemap(display_key(pair))  # noqa: E731
    if not exact:
        return lambda row: of_text(row[i])
    return lambda row: of_pair(exact[row[0]]) if row[0] in exact else of_text(row[i])


ADDRESS_COLUMNS = {
    "FROM": "from_display",
    "DISPLAYFROM": "from_display",
    "TO": "to_display",
    "DISPLAYTO": "to_display",
    "CC": "cc_display",
}
HEADER_OF_COLUMN = {"from_display": "From", "to_display": "To", "cc_display": "Cc"}


def sort_rows(
    rows: list[tuple],
    columns: Sequence[str],
    keys: Sequence[SortKey],
    overrides: dict[str, dict[int, tuple[str, str]]] | None = None,
) -> list[int]:
    """UIDs of rows (uid, *columns), in UID order) ordered by the keys; messages the keys
    cannot tell apart keep mailbox order (RFC 5256 3), whatever REVERSE says. `overrides`:
    per address column, the first address of rows whose cached text is ambiguous."""
    index = {column: i + 1 for i, column in enumerate(columns)}
    ordered = list(rows)
    # One stable pass per key, least significant first: REVERSE turns its key alone.
    for key in reversed(keys):
        ordered.sort(key=_key_function(key, index, overrides or {}), reverse=key.reverse)
    return [row[0] for row in ordered]


def sort_rows_keyed(
    rows: list[tuple],
    columns: Sequence[str],
    keys: Sequence[SortKey],
    overrides: dict[str, dict[int, tuple[str, str]]] | None = None,
) -> tuple[list[int], list]:
    """sort_rows (the same passes over each key's values, kept), and the sort values of each
    UID in that order (one value per UID for one key, else a tuple): what sort_position
    places another message by."""
    order, values = _sort_order(rows, columns, keys, overrides)
    uids = [rows[i][0] for i in order]
    if len(values) == 1:
        return uids, [values[0][i] for i in order]
    return uids, [tuple(column[i] for column in values) for i in order]


def _sort_order(rows, columns, keys, overrides) -> tuple[list[int], list[list]]:
    """The row indexes in sort order, and per key the rows' values."""
    index = {column: i + 1 for i, column in enumerate(columns)}
    values = [list(map(_key_function(key, index, overrides or {}), rows)) for key in keys]
    order = list(range(len(rows)))
    for key, of_row in zip(reversed(keys), reversed(values), strict=True):
        order.sort(key=of_row.__getitem__, reverse=key.reverse)
    return order, values


def sort_position(
    ordered: Sequence[int], values: Sequence, reverses: Sequence[bool], uid: int, value
) -> int:
    """Where a message (uid, its sort value) goes in `ordered` (UIDs in sort order, with
    their sort values): a binary search by the keys, REVERSE per key, and then by UID."""
    single = len(reverses) == 1
    low, high = 0, len(ordered)
    while low < high:
        middle = (low + high) // 2
        if sort_before(values[middle], ordered[middle], value, uid, reverses, single=single):
            low = middle + 1
        else:
            high = middle
    return low


def sort_before(value, uid: int, other, other_uid: int, reverses, *, single: bool) -> bool:
    """Whether the message (uid, its sort value) sorts before the other (RFC 5256 3: by the
    keys, each turned by its REVERSE, then in mailbox order)."""
    pairs = zip((value,), (other,), reverses) if single else zip(value, other, reverses)
    for mine, theirs, reverse in pairs:
        if mine != theirs:
            return mine > theirs if reverse else mine < theirs
    return uid < other_uid


# --- THREAD -----------------------------------------------------------------------------------


_DUMMY_KEY = ("", 0)


class Node:
    """A thread container: a message (uid) or a dummy (uid None) standing for one that is
    referred to but not here. `key` is a message's (sent date, uid), what siblings and
    threads are ordered by (RFC 5256 REFERENCES (5), (7))."""

    __slots__ = ("uid", "date", "subject", "parent", "children", "key")

    def __init__(self, uid: int | None = None, date: str = "", subject: str = "") -> None:
        self.uid = uid
        self.date = date
        self.subject = subject
        self.parent: Node | None = None
        self.children: list[Node] = []
        self.key = _DUMMY_KEY if uid is None else (date, uid)

    def sort_key(self) -> tuple[str, int]:
        node = self
        while node.uid is None and node.children:  # a dummy: its first child
            node = node.children[0]
        return node.key


def _subject_keys():
    """subject -> (casemapped base subject, whether it marked a reply or forward), once per
    distinct subject (a folder's subjects repeat)."""
    cache: dict[str, tuple[str, bool]] = {}

    def of(subject: str) -> tuple[str, bool]:
        found = cache.get(subject)
        if found is None:
            base, reply = base_subject(subject)
            found = cache[subject] = (casemap(base), reply)
        return found

    return of


def thread_orderedsubject(rows: list[tuple]) -> list[Node]:
    """RFC 5256 ORDEREDSUBJECT: by base subject then sent date; each subject's first message
    is the parent of the others; threads in the sent date order of their first message."""
    subject_of = _subject_keys()
    keyed = [
        (subject_of(subject or "")[0], sent or internal, uid)
        for uid, sent, internal, subject, *_ in rows
    ]
    keyed.sort()  # UIDs are unique: nothing past them is compared
    threads: list[Node] = []
    current: Node | None = None
    current_subject = None
    for subject, date, uid in keyed:
        node = Node(uid, date)
        if current is not None and subject == current_subject:
            current.children.append(node)  # no parent link: see thread_references
        else:
            current, current_subject = node, subject
            threads.append(node)
    threads.sort(key=_KEY)  # roots are messages
    return threads


_KEY = attrgetter("key")


def _is_ancestor(node: Node, of: Node | None) -> bool:
    while of is not None:
        if of is node:
            return True
        of = of.parent
    return False


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children.append(child)


def thread_references(rows: list[tuple]) -> list[Node]:
    """RFC 5256 REFERENCES (the steps are numbered as there). The threads come without
    parent links, as thread_orderedsubject's."""
    table: dict[str, Node] = {}
    nodes: list[Node] = []
    new_node = nodes.append

    # (1) link the messages and their references
    for uid, sent, internal, subject, message_id, in_reply_to, references in rows:
        date = sent or internal
        node = table.get(message_id) if message_id else None
        if node is None or node.uid is not None:
            # (1)(A) no Message-ID, or one seen already: a unique one of its own
            node = Node(uid, date, subject or "")
            new_node(node)
            if message_id and message_id not in table:
                table[message_id] = node
        else:  # the container its references made
            node.uid, node.date, node.subject, node.key = uid, date, subject or "", (date, uid)
        refs = references.split() if references else ()
        if not refs and in_reply_to:
            refs = (in_reply_to,)  # RFC 5256 REFERENCES (1)(B)
        previous: Node | None = None
        for ref in refs:
            current = table.get(ref)
            if current is None:
                current = table[ref] = Node()
                new_node(current)
            # (1)(B) link in order, leaving existing links and never making a loop
            if (
                previous is not None
                and current.parent is None
                and current is not previous
                and not _is_ancestor(current, previous.parent)
            ):
                _link(previous, current)
            previous = current
        # (1)(C) the last reference is the parent, replacing one presumed before. Kept
        # where it is when that is the parent already: siblings are put in order later
        # (steps 5 and 7), and removing from a thread of thousands each time is quadratic.
        parent = node.parent
        if parent is not None and parent is not previous:
            parent.children.remove(node)
            node.parent = parent = None
        if parent is None and previous is not None and not _is_ancestor(node, previous):
            _link(previous, node)
    # (2) the root set, (3) the table is not needed any more
    roots = [node for node in nodes if node.parent is None]
    # (4) prune dummies, deepest first
    order = _breadth_first(roots)
    for node in reversed(order):
        if node.children:
            node.children = _pruned(node.children, root=False)
    roots = _pruned(roots, root=True)
    # (5) the root set by sent date (a dummy by its first child's, its children sorted)
    for node in roots:
        if node.uid is None:
            node.children.sort(key=Node.sort_key)
    roots.sort(key=Node.sort_key)
    # (6) merge threads with the same base subject
    roots = _merge_subjects(roots)
    # (7) siblings by sent date, the youngest set first
    for node in reversed(_breadth_first(roots)):
        # The links up go: without them the threads hold no reference cycles, and
        # reference counting frees them at once instead of a full collection later.
        node.parent = None
        if len(node.children) > 1:
            node.children.sort(key=Node.sort_key)
    roots.sort(key=Node.sort_key)
    return roots


def _breadth_first(roots: list[Node]) -> list[Node]:
    order = list(roots)
    i = 0
    while i < len(order):
        order.extend(order[i].children)
        i += 1
    return order


def _pruned(children: list[Node], *, root: bool) -> list[Node]:
    """RFC 5256 REFERENCES (4): a dummy without children goes; one with children gives way to
    them, unless it is a root and more than one child would become roots."""
    kept: list[Node] = []
    for child in children:
        if child.uid is not None:
            kept.append(child)
        elif not child.children:
            continue
        elif root and len(child.children) > 1:
            kept.append(child)
        else:
            for grandchild in child.children:
                grandchild.parent = child.parent
                kept.append(grandchild)
    return kept


def _thread_subject(node: Node, subject_of) -> tuple[str, bool]:
    if node.uid is None:
        node = node.children[0]
    return subject_of(node.subject)


def _merge_subjects(roots: list[Node]) -> list[Node]:
    # (6)(A)(B) the subject table: per base subject, preferably a dummy, else a non-reply
    subject_of = _subject_keys()
    table: dict[str, Node] = {}
    for node in roots:
        subject, reply = _thread_subject(node, subject_of)
        if not subject:
            continue
        held = table.get(subject)
        if held is None:
            table[subject] = node
        elif held.uid is not None and (
            node.uid is None or (_is_reply(held, subject_of) and not reply)
        ):
            table[subject] = node
    # (6)(C) merge into the table's thread
    result: list[Node] = []
    position: dict[int, int] = {}  # id(node) -> its index in result
    for node in roots:
        if node.parent is not None:
            # wrapped, with a thread before it, into a new dummy: the dummy stands here
            dummy = node.parent
            if id(dummy) not in position:
                position[id(dummy)] = len(result)
                result.append(dummy)
            continue
        subject, reply = _thread_subject(node, subject_of)
        held = table.get(subject) if subject else None
        if held is None or held is node:
            position[id(node)] = len(result)
            result.append(node)
        elif held.uid is None and node.uid is None:
            for child in node.children:
                child.parent = held
            held.children.extend(node.children)
        elif held.uid is None or (reply and not _is_reply(held, subject_of)):
            _link(held, node)
        else:
            dummy = Node()
            _link(dummy, held)
            _link(dummy, node)
            table[subject] = dummy
            place = position.pop(id(held), None)
            if place is not None:
                result[place] = dummy
                position[id(dummy)] = place
    return result


def _is_reply(node: Node, subject_of) -> bool:
    if node.uid is None:
        return False
    return subject_of(node.subject)[1]


def thread_text(roots: list[Node], numbers: dict[int, int] | None = None) -> str:
    """The THREAD response's data (RFC 5256 4): "(3 6 (4 23)(44 7 96))(2)"; `numbers` maps
    UIDs to sequence numbers (None for UID THREAD)."""
    out: list[str] = []

    def number(node: Node) -> str:
        return str(node.uid if numbers is None else numbers[node.uid])

    def write(node: Node) -> None:
        out.append("(")
        if node.uid is None:
            for child in node.children:
                write(child)
            out.append(")")
            return
        out.append(number(node))
        while len(node.children) == 1 and node.children[0].uid is not None:
            node = node.children[0]
            out.append(" " + number(node))
        if node.children:
            out.append(" ")
            for child in node.children:
                write(child)
        out.append(")")

    for root in roots:
        write(root)
    return "".join(out)


# --- ESORT / PARTIAL ---------------------------------------------------------------------------


def ordered_set_text(numbers: Sequence[int]) -> str:
    """Numbers in the given order as a sequence set, ascending runs as ranges (ESORT ALL,
    RFC 5267 3.2): 5,3:4,2,1."""
    parts: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts)


def esort(
    tag: str,
    numbers: Sequence[int],
    returns: Sequence[str],
    *,
    uid: bool,
    partial: tuple[int, int] | None = None,
) -> untagged.ESearch:
    """`* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set PARTIAL (range set)` for a SORT
    with RETURN (RFC 5267 3.2: MIN/MAX are the first and last in sort order, ALL keeps it)."""
    # RETURN () means ALL (RFC 4731 3.1); RETURN (PARTIAL ...) alone just that; UPDATE
    # alone (RFC 5267 4.3) only the correlator, as Dovecot answers SEARCH RETURN (UPDATE)
    options = {r.upper() for r in returns} or ({"ALL"} if partial is None else set())
    options.discard("UPDATE")
    data: list[tuple[str, object]] = []
    if numbers:
        if "MIN" in options:
            data.append(("MIN", numbers[0]))
        if "MAX" in options:
            data.append(("MAX", numbers[-1]))
    if "COUNT" in options:
        data.append(("COUNT", len(numbers)))
    if numbers and "ALL" in options:
        data.append(("ALL", ordered_set_text(numbers)))
    if partial is not None:
        low, high = partial
        chosen = partial_slice(numbers, low, high)
        data.append(("PARTIAL", f"({low}:{high} {ordered_set_text(chosen) if chosen else 'NIL'})"))
    return untagged.ESearch(tag, uid, tuple(data))


def ascending_set_text(numbers: Iterable[int]) -> str:
    return ",".join(
        str(low) if low == high else f"{low}:{high}" for low, high in uid_ranges(numbers)
    )

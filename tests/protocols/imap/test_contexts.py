"""Update contexts without a socket (protocols/imap/contexts.py): ADDTO and REMOVEFROM pairs,
applied as a client applies them (RFC 5267 4.3.3, 4.3.4), turn the old result into the new."""

from __future__ import annotations

import random

import pytest

from protocols.imap import contexts, sort
from protocols.imap import parser as p
from protocols.imap.errors import CommandError


def context(results, *, sorted_=True, uid=True):
    return contexts.UpdateContext(
        tag="t", key=None, uid=uid, sort_keys=("SUBJECT",) if sorted_ else None, results=results
    )


def apply(result: list[int], removes, adds) -> list[int]:
    """The client's side: each pair in order; position 0 means wherever (mailbox order)."""
    out = list(result)
    for position, uids in removes:
        if position == 0:
            out = [u for u in out if u not in uids]
        else:
            assert out[position - 1 : position - 1 + len(uids)] == uids
            del out[position - 1 : position - 1 + len(uids)]
    for position, uids in adds:
        if position == 0:
            out = sorted(out + uids)
        else:
            out[position - 1 : position - 1] = uids
    return out


def test_sorted_pairs_reproduce_the_new_order():
    rng = random.Random(5267)
    for _ in range(500):
        universe = rng.sample(range(1, 60), rng.randint(0, 30))  # a sort order
        old = [u for u in universe if rng.random() < 0.5]
        new = [u for u in universe if (u in old and rng.random() < 0.7) or rng.random() < 0.3]
        c = context(list(old))
        left, joined = contexts.delta(c, new, set(universe))
        assert left == set(old) - set(new)
        assert joined == set(new) - set(old)
        removes = contexts.removal_pairs(c, left)
        adds = contexts.addition_pairs(c, joined, new)
        assert apply(old, removes, adds) == new
        assert c.results == new
        assert c.members == set(new)


def test_search_pairs_are_position_zero_in_mailbox_order():
    c = context([2, 5, 9], sorted_=False)
    assert contexts.delta(c, [5, 7], {2, 5, 7}) == ({2}, {7})
    assert contexts.removal_pairs(c, {9, 2, 4}) == [(0, [2, 9])]
    assert contexts.addition_pairs(c, {1, 7}) == [(0, [1, 7])]
    assert c.results == [1, 5, 7]
    assert contexts.update_response(c, [(0, [2, 9])], [(0, [1, 7])], lambda u: u) == (
        b'* ESEARCH (TAG "t") UID REMOVEFROM (0 2,9) ADDTO (0 1,7)\r\n'
    )


def test_sorted_response_keeps_order_and_numbers():
    c = context([8, 3, 4, 1], uid=False)
    seqs = {8: 4, 3: 2, 4: 3, 1: 1}
    assert contexts.update_response(c, [], [(2, [3, 4, 1])], seqs.get) == (
        b'* ESEARCH (TAG "t") ADDTO (2 2:3,1)\r\n'
    )
    assert contexts.update_response(c, [], [], seqs.get) == b""


def test_limit_and_tag_reuse(settings):
    settings.MAILHOST_IMAP_MAX_UPDATE_CONTEXTS = 1
    live: dict = {}
    assert contexts.start(live, "a1", None, uid=True, results=[1]) == b""
    with pytest.raises(CommandError) as refused:
        contexts.check_tag(live, "a1")
    assert refused.value.reply == contexts.BAD_TAG_IN_USE
    assert contexts.start(live, "a2", None, uid=True, results=[]) == (
        b'* NO [NOUPDATE "a2"] Too many update contexts\r\n'
    )
    assert list(live) == ["a1"]


def test_parser_return_options_and_cancelupdate():
    search = p.parse_command([b"a UID SEARCH RETURN (CONTEXT UPDATE PARTIAL 1:10) ALL"])
    assert search.returns == ("UPDATE",)
    assert search.partial == (1, 10)
    sort = p.parse_command([b"b SORT RETURN (UPDATE COUNT) (DATE) UTF-8 ALL"])
    assert sort.returns == ("UPDATE", "COUNT")
    assert isinstance(p.parse_command([b"c SEARCH RETURN (ALL PARTIAL 1:2) ALL"]), p.ParseError)
    assert isinstance(p.parse_command([b"c SEARCH RETURN (UPDATE UPDATE) ALL"]), p.ParseError)
    assert p.parse_command([b'd CANCELUPDATE "a" "b"']) == p.CancelUpdate(
        "d", "CANCELUPDATE", ("a", "b")
    )
    assert isinstance(p.parse_command([b"e CANCELUPDATE"]), p.ParseError)
    assert isinstance(p.parse_command([b"e CANCELUPDATE a"]), p.ParseError)


@pytest.mark.parametrize(
    "criteria",
    [
        ["SUBJECT"],
        ["REVERSE", "SIZE"],
        ["SUBJECT", "REVERSE", "SIZE"],
        ["REVERSE", "DATE", "SUBJECT"],
    ],
)
def test_sort_context_places_arrivals_as_a_full_sort_would(criteria):
    # CONTEXT=SORT places a joining message by binary search on the kept sort values; after
    # each round of arrivals and expunges the result, and the client's copy built from the
    # ADDTO/REMOVEFROM pairs, equal a full sort of what is left (ties in UID order)
    keys = sort.parse_criteria(criteria)
    columns = sort.columns_for(keys)
    rng = random.Random(" ".join(criteria))

    def message(uid):
        subject = rng.choice(["a", "Re: a", "b", "B", "c", "[x] c", "d"])
        when = f"2024-01-0{rng.randint(1, 3)} 00:00:00"
        values = {"subject": subject, "size": rng.choice([10, 20, 30]), "sent_date": when}
        values["internal_date"] = when
        return (uid, *(values[column] for column in columns))

    rows = {uid: message(uid) for uid in range(1, 40)}
    ordered, values = sort.sort_rows_keyed(sorted(rows.values()), columns, keys)
    c = contexts.UpdateContext(
        tag="t", key=None, uid=True, sort_keys=keys, results=ordered, values=values
    )
    client_copy = list(ordered)
    next_uid = 40
    for _ in range(12):
        gone = set(rng.sample(sorted(rows), min(len(rows), rng.randint(0, 4))))
        arrived = set(range(next_uid, next_uid + rng.randint(0, 5)))
        next_uid += len(arrived)
        for uid in gone:
            del rows[uid]
        new_rows = [message(uid) for uid in sorted(arrived)]
        rows.update((row[0], row) for row in new_rows)
        _, new_values = sort.sort_rows_keyed(new_rows, columns, keys)
        placed = dict(zip(sort.sort_rows(new_rows, columns, keys), new_values, strict=True))
        removes = contexts.removal_pairs(c, gone)
        adds = contexts.addition_pairs(c, arrived, values=placed)
        client_copy = apply(client_copy, removes, adds)
        expected, expected_values = sort.sort_rows_keyed(sorted(rows.values()), columns, keys)
        assert expected == sort.sort_rows(sorted(rows.values()), columns, keys)  # SORT's own
        assert c.results == expected
        assert c.values == expected_values
        assert client_copy == expected

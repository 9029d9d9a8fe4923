"""mailboxes.ascending: where ascending UIDs stand in an ascending map of them, by the map's
stretches with and without gaps, agrees with a bisection of each."""

from __future__ import annotations

import bisect
from array import array

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailboxes import ascending


def _bisected(mapped, numbers, base):  # noqa: ANN001, ANN202
    out = []
    for n in numbers:
        i = bisect.bisect_left(mapped, n)
        out.append(i + base if i < len(mapped) and mapped[i] == n else None)
    return out


# Maps without gaps, with a few, and with gaps all over; numbers in them, around them, outside.
maps = st.one_of(
    st.builds(lambda lo, n: list(range(lo, lo + n)), st.integers(1, 50), st.integers(0, 300)),
    st.lists(st.integers(1, 400), max_size=300).map(lambda v: sorted(set(v))),
    st.builds(
        lambda n, gone: sorted(set(range(1, n + 1)) - set(gone)),
        st.integers(0, 300),
        st.lists(st.integers(1, 300), max_size=5),
    ),
)


@given(mapped=maps, data=st.data(), base=st.sampled_from([0, 1]))
@hypothesis_settings(max_examples=400, deadline=None)
def test_positions_and_present_agree_with_bisection(mapped, data, base):
    pool = st.one_of(st.sampled_from(mapped), st.integers(0, 420)) if mapped else st.integers()
    numbers = sorted(set(data.draw(st.lists(pool, max_size=200))))
    for form in (mapped, array("I", mapped)):
        expected = _bisected(form, numbers, base)
        assert ascending.positions(form, numbers, base=base) == expected
        assert ascending.present(form, numbers) == [
            n for n, place in zip(numbers, expected, strict=True) if place is not None
        ]


def test_a_large_map_with_one_gap():
    mapped = array("I", [*range(1, 50_001), *range(50_101, 100_101)])
    numbers = list(range(2, 100_101, 3))
    assert ascending.positions(mapped, numbers, base=1) == _bisected(mapped, numbers, 1)

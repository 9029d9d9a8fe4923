"""The shared RFC 5322 address-list parser (mailboxes/addresslist.py): what it returns for
ordinary lists (as email.utils.getaddresses reads them), and that any input is parsed in
linear time without recursion (hypothesis, with a time budget per example)."""

from __future__ import annotations

import os
import time
from email.utils import getaddresses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailboxes import addresslist

EXAMPLES = int(os.environ.get("MAILHOST_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=500,  # milliseconds per example, on a loaded machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PIECES = st.sampled_from(
    [b"a", b"@", b".", b",", b";", b":", b"<", b">", b"(", b")", b'"', b"\\", b"[", b"]"]
    + [b" ", b"\t", b"\r\n ", b"=?utf-8?q?x?=", b"\xc3\xa9", b"\x00", b"bob@example.org"]
)


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.org",
        "Alice <alice@example.org>, bob@example.org",
        '"Smith, John" <js@example.org>',
        "e@example.org (Eve Example)",
        "John Q. Public <jqp@example.org>",
    ],
)
def test_ordinary_lists_read_as_getaddresses_reads_them(value):
    ours = [
        ((name or b"").decode(), f"{mailbox.decode()}@{host.decode()}")
        for name, _adl, mailbox, host in addresslist.parse_addresses(value.encode())
    ]
    assert ours == getaddresses([value])


@pytest.mark.parametrize("depth", [1_000, 20_000, 200_000])
def test_nested_comments_are_counted_not_recursed(depth):
    value = b"(" * depth + b"x" + b")" * depth + b" a@b.example"
    started = time.thread_time()  # CPU: the bound is against quadratic work, not a busy machine
    assert addresslist.parse_addresses(value, limit=len(value)) == [
        (b"(" * (depth - 1) + b"x" + b")" * (depth - 1), None, b"a", b"b.example")
    ]
    assert time.thread_time() - started < 1.0


def test_long_lists_are_read_up_to_the_limit():
    value = b", ".join(b"u%d@example.org" % i for i in range(100_000))
    started = time.thread_time()
    parsed = addresslist.parse_addresses(value)
    assert time.thread_time() - started < 1.0
    assert 1000 < len(parsed) <= value[: addresslist.MAX_LIST_OCTETS].count(b",") + 1


@FUZZ
@given(st.lists(PIECES, max_size=400).map(b"".join))
def test_any_input_gives_four_tuples(value):
    for address in addresslist.parse_addresses(value):
        assert len(address) == 4
        assert all(part is None or isinstance(part, bytes) for part in address)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_give_four_tuples(value):
    assert all(len(a) == 4 for a in addresslist.parse_addresses(value))


# One address written the common way is read off a regular expression, not by the token
# walk: the same answer as the walk's, whatever the text.
ONE_ADDRESS_PIECES = st.sampled_from(
    [b"Al", b"ice", b" ", b"  ", b"\t", b".", b"-", b"_", b"=?utf-8?q?x?=", b"'", b"+"]
    + [b"<", b">", b"@", b"example", b".org", b"MISSING_MAILBOX", b"MISSING_DOMAIN"]
    + [b'"', b"(c)", b",", b":", b";", b"[", b"]", b"\\", b"\r\n", b"\x0b", b"\xc3\xa9"]
)


@FUZZ
@given(
    st.tuples(
        st.lists(ONE_ADDRESS_PIECES, max_size=6).map(b"".join),
        st.lists(ONE_ADDRESS_PIECES, max_size=4).map(b"".join),
        st.lists(ONE_ADDRESS_PIECES, max_size=4).map(b"".join),
        st.booleans(),
    )
)
def test_one_address_is_read_as_the_token_walk_reads_it(parts):
    name, local, host, bracketed = parts
    value = name + b"<" + local + b"@" + host + b">" if bracketed else local + b"@" + host
    assert addresslist.parse_addresses(value) == addresslist._parse_list(value)
    assert addresslist.parse_addresses(value, limit=7) == addresslist._parse_list(value[:7])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            b"Alice  Q.\tPublic <a.b+c@example.org> ",
            (b"Alice Q. Public", None, b"a.b+c", b"example.org"),
        ),
        (b" <a@b> ", (None, None, b"a", b"b")),
        (b"  <a@b>", (None, None, b"a", b"b")),
        (b"a@b.example", (None, None, b"a", b"b.example")),
        (b"=?utf-8?q?Al?= <x@y>", (b"=?utf-8?q?Al?=", None, b"x", b"y")),
    ],
)
def test_common_single_addresses(value, expected):
    assert addresslist.parse_addresses(value) == [expected] == addresslist._parse_list(value)

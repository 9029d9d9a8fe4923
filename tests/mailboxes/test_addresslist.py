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

"""index (RFC 5260 6): :index and :last on header, address and date."""

from __future__ import annotations

from mailboxes.sieve.parser import Test


def indexed(node: Test, values: list) -> list:
    """RFC 5260 6: :index n picks the n-th occurrence, counted from the end with :last."""
    index = node.tagged.get(":index")
    if not index:
        return values
    n = index[1].value
    if ":last" in node.tagged:
        n = len(values) + 1 - n
    return [values[n - 1]] if 1 <= n <= len(values) else []

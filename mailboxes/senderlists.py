"""Allow and block lists of senders: the pattern syntax and the matching rule, without I/O.

A pattern is one of
- `alice@example.com`: exactly that address (local part compared without case, as almost
  every domain folds case);
- `@example.com` (or `*@example.com`): any address at exactly that domain;
- `example.com` (or `*.example.com`): that domain and every domain under it.

The rule (selectors.sender_lists): a mailbox's own entries beat its domain's; within one
list the most specific matching pattern wins (the address, then `@domain`, then the
longest matching domain suffix). One list holds a pattern once, so no two matches tie.
"""

from __future__ import annotations

from mailboxes.addresses import domain_to_ascii, parse_address
from mailboxes.exceptions import InvalidAddress, InvalidValue

ALLOW = "allow"
BLOCK = "block"


def pattern_normalize(text: str) -> str:
    """The stored form of a pattern as a person writes it; raises InvalidValue."""
    value = text.strip().strip("<>").strip()
    try:
        if value.startswith("*@"):
            value = value[1:]
        if value.startswith("@"):
            return "@" + domain_to_ascii(value[1:])
        if "@" in value:
            address = parse_address(value)
            return f"{address.local_part.lower()}@{address.domain}"
        if value.startswith("*."):
            value = value[2:]
        if "." not in value.strip("."):
            raise InvalidValue(f"{text!r}: give an address, @domain or a domain with a dot")
        return domain_to_ascii(value)
    except InvalidAddress as exc:
        raise InvalidValue(f"{text!r} is not an address, @domain or domain: {exc}") from None


def sender_candidates(sender: str) -> list[str]:
    """The patterns that match `sender` (an address), most specific first; [] when the
    sender is empty (a bounce) or no address."""
    try:
        address = parse_address(sender)
    except InvalidAddress:
        return []
    labels = address.domain.split(".")
    suffixes = [".".join(labels[i:]) for i in range(len(labels) - 1)]  # never a bare TLD
    return [f"{address.local_part.lower()}@{address.domain}", f"@{address.domain}", *suffixes]


def pattern_display(pattern: str) -> str:
    """A stored pattern as people read it (Unicode domains)."""
    from mailboxes.addresses import domain_to_unicode

    local, at, domain = pattern.rpartition("@")
    if at:
        return f"{local}@{domain_to_unicode(domain)}"
    return domain_to_unicode(pattern)

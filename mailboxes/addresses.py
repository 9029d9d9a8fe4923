"""Mail addresses: splitting, validating and normalizing (IDNA domains, UTF-8 local parts)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import idna

from mailboxes.exceptions import InvalidAddress

_LOCAL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>()\[\]\\,;:@\"]")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Address:
    local_part: str
    domain: str  # lower-case ASCII (IDNA)

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}"


def domain_to_ascii(domain: str) -> str:
    """Lower-case ASCII form of a domain name; internationalized names become xn-- labels.

    IDNA 2008 with the UTS #46 mapping, as browsers and current resolvers do (Python's own
    "idna" codec is IDNA 2003, which would turn straße.de into strasse.de, another domain).
    """
    domain = domain.strip().rstrip(".")
    if not domain:
        raise InvalidAddress("empty domain")
    try:
        if domain.isascii():
            ascii_name = domain.lower()
            if "xn--" in ascii_name:
                idna.decode(ascii_name)  # refuse A-labels that are not valid punycode
        else:
            ascii_name = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidAddress(f"invalid domain {domain!r}") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise InvalidAddress(f"invalid domain {domain!r}")
    return ascii_name


def domain_to_unicode(ascii_name: str) -> str:
    """The display form of a stored (ASCII) domain name."""
    if "xn--" not in ascii_name:
        return ascii_name
    try:
        return idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError):
        return ascii_name


# RFC 5321 4.5.3.1.1 caps a local part at 64 octets, and 4.5.3.1 asks servers to accept
# longer ones where they can: the SRS addresses our forwarding writes (mailboxes.srs) carry a
# whole original address and often need more, so for them the cap is 255.
SRS_LOCAL_MAX = 255


def local_part_too_long(local: str) -> bool:
    size = len(local.encode("utf-8", "surrogateescape"))
    if local[:5].lower() in {"srs0=", "srs1=", "srs0+", "srs1+", "srs0-", "srs1-"}:
        return size > SRS_LOCAL_MAX
    return size > 64


# Port 25 parses a message's sender and recipient twice each, or more (MAIL's and RCPT's
# checks, the recipient's resolution, the sender lists, the DMARC report): an Address is frozen
# and its text's parse never changes, so the last ones are kept (a refusal is not kept).
@functools.lru_cache(maxsize=1024)
def parse_address(text: str) -> Address:
    """Parse `local@domain` (angle brackets allowed); raises InvalidAddress."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, sep, domain = text.rpartition("@")
    if not sep or not local:
        raise InvalidAddress(f"not an address: {text!r}")
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        local = local[1:-1]
        if any(ord(c) < 32 or c in '"\\' for c in local):
            raise InvalidAddress(f"invalid local part in {text!r}")
    elif (
        _LOCAL_FORBIDDEN.search(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        raise InvalidAddress(f"invalid local part in {text!r}")
    if local_part_too_long(local):
        raise InvalidAddress(f"local part longer than 64 octets in {text!r}")
    return Address(local_part=local, domain=domain_to_ascii(domain))

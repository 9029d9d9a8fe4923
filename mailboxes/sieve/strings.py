"""What happens inside string values: encoded characters (RFC 5228 2.4.2.4) at check time and
variable references (RFC 5229 3) at run time."""

from __future__ import annotations

import re
from collections.abc import Callable

# RFC 5228 2.4.2.4: "${hex:" hex-pair-seq "}" and "${unicode:" unicode-hex-seq "}", the
# prefixes case-insensitive (ABNF), blanks around and between the values.
_ENCODED = re.compile(
    r"\$\{(?:(hex):([ \t\r\n]*[0-9A-Fa-f]{1,2}(?:[ \t\r\n]+[0-9A-Fa-f]{1,2})*[ \t\r\n]*)"
    r"|(unicode):([ \t\r\n]*[0-9A-Fa-f]+(?:[ \t\r\n]+[0-9A-Fa-f]+)*[ \t\r\n]*))\}",
    re.IGNORECASE,
)


def decode_encoded(value: str) -> tuple[str, str | None]:
    """The value with its encoded characters decoded, and an error message or None. A
    sequence that does not follow the grammar is left as it is written (RFC 5228 2.4.2.4)."""
    if "${" not in value:
        return value, None
    errors: list[str] = []

    def replace(match: re.Match) -> str:
        if match.group(1):
            octets = bytes(int(pair, 16) for pair in match.group(2).split())
            try:
                return octets.decode("utf-8")
            except UnicodeDecodeError:
                errors.append(f"{match.group()!r} is not valid UTF-8")
                return match.group()
        text = []
        for code in match.group(4).split():
            number = int(code, 16)
            if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
                errors.append(f"{match.group()!r} names an invalid Unicode character")
                return match.group()
            text.append(chr(number))
        return "".join(text)

    decoded = _ENCODED.sub(replace, value)
    return decoded, (errors[0] if errors else None)


# RFC 5229 3: variable-ref = "${" [namespace] variable-name "}", names are identifiers or
# numbers (match variables); namespaces are identifiers followed by a dot.
_REFERENCE = re.compile(r"\$\{((?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}")
VARIABLE_NAME = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*\Z")


def has_references(value: str) -> bool:
    return "${" in value and _REFERENCE.search(value) is not None


def references(value: str) -> list[str]:
    return [match.group(1).lower() for match in _REFERENCE.finditer(value)]


def expand(value: str, lookup: Callable[[str], str | None]) -> str:
    """Each ${name} replaced by lookup(name); an unknown name gives "" (RFC 5229 3), a
    reference whose namespace nobody supports stays as written."""
    if "${" not in value:
        return value

    def replace(match: re.Match) -> str:
        found = lookup(match.group(1).lower())
        return match.group() if found is None else found

    return _REFERENCE.sub(replace, value)


def quote_wildcards(value: str) -> str:
    """RFC 5229 4.1.3 :quotewildcard: the value matches itself literally under :matches."""
    return re.sub(r"([*?\\])", r"\\\1", value)

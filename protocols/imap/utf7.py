"""Modified UTF-7 for mailbox names (RFC 3501 5.1.3; RFC 9051 5.1.3 keeps it for old clients)."""

from __future__ import annotations

import base64


class UTF7Error(ValueError):
    pass


def encode(name: str) -> str:
    """A Unicode mailbox name in modified UTF-7."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode(text: str) -> str:
    """A modified UTF-7 mailbox name as Unicode; raises UTF7Error on malformed input."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if ord(char) > 0x7E or ord(char) < 0x20:
            raise UTF7Error("non-ASCII character in a modified UTF-7 name")
        if char != "&":
            out.append(char)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise UTF7Error("unterminated shift sequence")
        chunk = text[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        if any(c not in _B64 for c in chunk):
            raise UTF7Error("bad base64 in a shift sequence")
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        try:
            data = base64.b64decode(padded, validate=True)
            decoded = data.decode("utf-16-be")
        except (ValueError, UnicodeDecodeError) as exc:
            raise UTF7Error("bad shift sequence") from exc
        if len(data) % 2 or any(0x20 <= ord(c) <= 0x7E for c in decoded):
            raise UTF7Error("shift sequence encodes printable ASCII")
        out.append(decoded)
    return "".join(out)


_B64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")

"""Sizes as operators write them: `500M`, `2G`, `1.5 GB`, `0` or `unlimited` (quotas).

Units are binary, as Dovecot's quota settings and the admin's display are: K = KiB = 1024,
M = MiB, G = GiB, T = TiB; `B`, `iB` and spaces are optional, case does not matter.
"""

from __future__ import annotations

import re

UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
UNLIMITED = {"0", "unlimited", "none", ""}


def parse_size(text: str) -> int:
    """Bytes from `500M`, `2G`, `1.5 GB`, `1048576`; `0`/`unlimited`/empty give 0.
    ValueError with a sentence for anything else."""
    value = text.strip().lower()
    if value in UNLIMITED:
        return 0
    match = _SIZE.fullmatch(value)
    if not match:
        raise ValueError(
            f"{text.strip()!r} is not a size: give bytes or a number with K, M, G or T"
            " (500M, 2G, 1.5 GB), or 0 for unlimited"
        )
    return round(float(match[1]) * UNITS[match[2].lower()])


def format_size(size: int) -> str:
    """The shortest exact form parse_size reads back: 2G, 500M, 1536K, 1000 (bytes), 0."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def human_size(size: int) -> str:
    """For reading: 500.0 MiB, 1.5 GiB, 12 B."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)

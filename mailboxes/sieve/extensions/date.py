"""date and currentdate (RFC 5260 4, 5), with :zone/:originalzone and the date parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from mailboxes.sieve import message as msg
from mailboxes.sieve.check import ZONE
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.extensions.index import indexed
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Test


def _zone_of(run: Run, frame: Frame, node: Test, original: datetime | None) -> timezone | None:
    zone = node.tagged.get("zone")
    if zone is None:
        return run.now.tzinfo or UTC
    if zone[0] == ":originalzone":
        return original.tzinfo if original else None
    text = run.string(frame, zone[1])
    if not ZONE.match(text):
        raise SieveRuntimeError(f"invalid time zone {text!r}")
    minutes = int(text[1:3]) * 60 + int(text[3:])
    return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))


def _date(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 5260 4: a date part of a header's date, in the zone asked for."""
    header, part = (run.string(frame, arg) for arg in node.positional[:2])
    keys = run.strings(frame, node.positional[2])
    values = []
    for value in indexed(node, run.message.decoded(header)):
        if header.lower() == "received":  # RFC 5260 4: the date follows the last ";"
            value = value.rpartition(";")[2]
        when = msg.parse_date(value)
        if when is None:
            continue
        zone = _zone_of(run, frame, node, when)
        values.append(date_part(when.astimezone(zone), part))
    return None not in values and run.match(frame, node, values, keys)


def _currentdate(run: Run, frame: Frame, node: Test) -> bool:
    part = run.string(frame, node.positional[0])
    keys = run.strings(frame, node.positional[1])
    value = date_part(run.now.astimezone(_zone_of(run, frame, node, None)), part)
    return value is not None and run.match(frame, node, [value], keys)


def date_part(when: datetime, part: str) -> str | None:
    """RFC 5260 4.2; None for a part that does not exist."""
    part = part.lower()
    offset = when.utcoffset() or timedelta()
    sign = "-" if offset < timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    zone = f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    if part == "year":
        return f"{when.year:04d}"
    if part == "month":
        return f"{when.month:02d}"
    if part == "day":
        return f"{when.day:02d}"
    if part == "date":
        return f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
    if part == "julian":  # the Modified Julian Day
        return str(when.date().toordinal() - datetime(1858, 11, 17).toordinal())
    if part == "hour":
        return f"{when.hour:02d}"
    if part == "minute":
        return f"{when.minute:02d}"
    if part == "second":
        return f"{when.second:02d}"
    if part == "time":
        return f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    if part == "iso8601":
        # RFC 3339 5.6 (which RFC 5260 cites): "Z" for UTC, as Pigeonhole writes it
        suffix = "Z" if zone == "+0000" else f"{zone[:3]}:{zone[3:]}"
        return when.strftime("%Y-%m-%dT%H:%M:%S") + suffix
    if part == "std11":
        return when.strftime("%a, %d %b %Y %H:%M:%S ") + zone
    if part == "zone":
        return zone
    if part == "weekday":
        return str((when.weekday() + 1) % 7)  # 0 is Sunday
    return None


TESTS = {"date": _date, "currentdate": _currentdate}

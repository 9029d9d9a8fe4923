"""The tests (RFC 5228 5 and the extensions): each returns True or False."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from mailboxes.sieve import message as msg
from mailboxes.sieve.check import ZONE
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Test

# -- RFC 5228 5 -----------------------------------------------------------------------------


def _allof(run: Run, frame: Frame, node: Test) -> bool:
    return all(run.test(frame, test) for test in node.tests)


def _anyof(run: Run, frame: Frame, node: Test) -> bool:
    return any(run.test(frame, test) for test in node.tests)


def _not(run: Run, frame: Frame, node: Test) -> bool:
    return not run.test(frame, node.tests[0])


def _indexed(node: Test, values: list) -> list:
    """RFC 5260 6: :index n picks the n-th occurrence, counted from the end with :last."""
    index = node.tagged.get(":index")
    if not index:
        return values
    n = index[1].value
    if ":last" in node.tagged:
        n = len(values) + 1 - n
    return [values[n - 1]] if 1 <= n <= len(values) else []


def _header(run: Run, frame: Frame, node: Test) -> bool:
    names, keys = (run.strings(frame, arg) for arg in node.positional)
    values = []
    for name in names:
        values += _indexed(node, run.message.decoded(name))
    return run.match(frame, node, values, keys)


def _address_values(run: Run, frame: Frame, node: Test, pairs: list) -> list[str]:
    part = node.tagged.get("address-part", (":all",))[0]
    values = []
    for local, domain in pairs:
        value = msg.address_part(local, domain, part)
        if value is not None:
            values.append(value)
    return values


def _address(run: Run, frame: Frame, node: Test) -> bool:
    names, keys = (run.strings(frame, arg) for arg in node.positional)
    pairs = []
    for name in names:
        for value in _indexed(node, run.message.values(name)):
            pairs += msg.addresses(value)
    values = _address_values(run, frame, node, pairs)
    return run.match(frame, node, values, keys, count=len(pairs))


def _envelope(run: Run, frame: Frame, node: Test) -> bool:
    parts, keys = (run.strings(frame, arg) for arg in node.positional)
    part = node.tagged.get("address-part", (":all",))[0]
    values, count = [], 0
    for name in parts:
        name = name.lower()
        value = {
            "from": run.context.envelope_from,
            "to": run.context.envelope_to,
            "auth": run.context.envelope_auth or None,  # absent unless the sender logged in
        }.get(name)
        if value is None:
            continue
        count += 1
        if value.strip() in ("", "<>"):  # RFC 5228 5.4: the null reverse-path is ""
            if part != ":detail":
                values.append("")
            continue
        found = msg.address_part(*msg.envelope_address(value), part)
        if found is not None:
            values.append(found)
    return run.match(frame, node, values, keys, count=count)


def _exists(run: Run, frame: Frame, node: Test) -> bool:
    return all(run.message.values(name) for name in run.strings(frame, node.positional[0]))


def _size(run: Run, frame: Frame, node: Test) -> bool:
    limit = node.positional[0].value
    if node.tagged["size"][0] == ":over":
        return run.message.size > limit
    return run.message.size < limit


def _true(run: Run, frame: Frame, node: Test) -> bool:
    return True


def _false(run: Run, frame: Frame, node: Test) -> bool:
    return False


# -- extensions -----------------------------------------------------------------------------


def _body(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 5173: :text (default) the text parts decoded, :content the given types, :raw."""
    keys = run.strings(frame, node.positional[0])
    transform, content = node.tagged.get("transform", (":text", None))
    if transform == ":raw":
        values = msg.body_raw(run.message)
    elif transform == ":content":
        values = msg.body_parts(run.message, run.strings(frame, content))
    else:
        values = msg.body_parts(run.message, None)
    return run.match(frame, node, values, keys)


def _string(run: Run, frame: Frame, node: Test) -> bool:
    sources, keys = (run.strings(frame, arg) for arg in node.positional)
    # RFC 5229 5: :count counts the sources that are not empty
    return run.match(frame, node, sources, keys, count=sum(1 for s in sources if s))


def _hasflag(run: Run, frame: Frame, node: Test) -> bool:
    from mailboxes.sieve.commands import _flag_list

    keys = run.strings(frame, node.positional[-1])
    if len(node.positional) == 2:
        names = node.positional[0].values
        flags = _flag_list([run.lookup(frame, name.lower()) or "" for name in names])
    else:
        flags = list(run.flags)
    keys = _flag_list(keys) if node.tagged.get("match", (":is",))[0] == ":is" else keys
    return run.match(frame, node, flags, keys)


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
    for value in _indexed(node, run.message.decoded(header)):
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


def _mailboxexists(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 5490 3.1 (and RFC 9042 4's mailboxidexists): true when every one exists."""
    callback = (
        run.context.mailbox_exists if node.name == "mailboxexists" else run.context.mailboxid_exists
    )
    names = run.strings(frame, node.positional[0])
    return callback is not None and all(callback(name) for name in names)


def _specialuse_exists(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 8579 3: every attribute is on some folder, or on the named one."""
    mailbox = run.string(frame, node.positional[0]) if len(node.positional) == 2 else None
    attributes = run.strings(frame, node.positional[-1])
    callback = run.context.specialuse_exists
    if callback is None:
        return False
    if (
        mailbox is not None
        and run.context.mailbox_exists
        and not run.context.mailbox_exists(mailbox)
    ):
        return False
    return all(callback(mailbox, attribute) for attribute in attributes)


def _duplicate(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 7352 3: the message's Message-ID (or :header, or :uniqueid) seen before under
    this :handle. A message without that header is never a duplicate."""
    source = node.tagged.get("id")
    if source and source[0] == ":uniqueid":
        unique = run.string(frame, source[1])
    else:
        header = run.string(frame, source[1]) if source else "message-id"
        values = run.message.values(header)
        if not values:
            return False
        unique = values[0].strip()
    handle = run.tag_string(frame, node, ":handle", "")
    seconds = node.tagged[":seconds"][1].value if ":seconds" in node.tagged else 7 * 86400
    key = hashlib.sha256(f"{handle}\0{unique}".encode("utf-8", "surrogateescape")).hexdigest()
    callback = run.context.duplicate
    return bool(callback(key, seconds)) if callback else False


def _valid_notify_method(run: Run, frame: Frame, node: Test) -> bool:
    from mailboxes.sieve import notify

    return all(notify.method_problem(uri) is None for uri in run.strings(frame, node.positional[0]))


def _notify_method_capability(run: Run, frame: Frame, node: Test) -> bool:
    from mailboxes.sieve import notify

    uri, capability = (run.string(frame, arg) for arg in node.positional[:2])
    keys = run.strings(frame, node.positional[2])
    answer = notify.capability(uri, capability)
    return answer is not None and run.match(frame, node, [answer], keys)


def _spamtest(run: Run, frame: Frame, node: Test) -> bool:
    """RFC 5235: "0" untested, then 1..10 (or 0..100 with :percent) from the score."""
    keys = [run.string(frame, node.positional[0])]
    score = run.context.spam_score
    if score is None:
        value = "0"
    else:
        percent = _percent(score, run.context.spam_max)
        value = str(percent) if ":percent" in node.tagged else str(1 + percent * 9 // 100)
    return run.match(frame, node, [value], keys)


def _percent(score: float, top: float) -> int:
    """The score as a whole percentage of `top`, rounded down (Pigeonhole's scale)."""
    return int(min(max(score / top, 0.0), 1.0) * 100) if top > 0 else 100


def _virustest(run: Run, frame: Frame, node: Test) -> bool:
    keys = [run.string(frame, node.positional[0])]
    score, top = run.context.virus_score, run.context.virus_max
    if score is None:
        value = "0"
    else:
        value = str(1 + _percent(score, top) * 4 // 100)
    return run.match(frame, node, [value], keys)


# RFC 5183 4: what the environment test knows without the MDA's help.
ENVIRONMENT = {"name": "Mailhost", "location": "MDA", "phase": "during"}


def _environment(run: Run, frame: Frame, node: Test) -> bool:
    name = run.string(frame, node.positional[0]).lower()
    keys = run.strings(frame, node.positional[1])
    value = {**ENVIRONMENT, **run.context.environment}.get(name)
    return value is not None and run.match(frame, node, [value], keys)


def _ihave(run: Run, frame: Frame, node: Test) -> bool:
    from mailboxes.sieve.grammar import CAPABILITIES, IMPLICIT_CAPABILITIES

    names = run.strings(frame, node.positional[0])
    return all(name in CAPABILITIES or name in IMPLICIT_CAPABILITIES for name in names)


TESTS = {
    "environment": _environment,
    "ihave": _ihave,
    "allof": _allof,
    "anyof": _anyof,
    "not": _not,
    "header": _header,
    "address": _address,
    "envelope": _envelope,
    "exists": _exists,
    "size": _size,
    "true": _true,
    "false": _false,
    "body": _body,
    "string": _string,
    "hasflag": _hasflag,
    "date": _date,
    "currentdate": _currentdate,
    "mailboxexists": _mailboxexists,
    "mailboxidexists": _mailboxexists,
    "duplicate": _duplicate,
    "specialuse_exists": _specialuse_exists,
    "valid_notify_method": _valid_notify_method,
    "notify_method_capability": _notify_method_capability,
    "spamtest": _spamtest,
    "virustest": _virustest,
}

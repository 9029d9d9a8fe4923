"""The core tests (RFC 5228 5), and the table of every test with the extensions'."""

from __future__ import annotations

from mailboxes.sieve import message as msg
from mailboxes.sieve.extensions import EXTENSION_TESTS
from mailboxes.sieve.extensions.index import indexed
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Test


def _allof(run: Run, frame: Frame, node: Test) -> bool:
    return all(run.test(frame, test) for test in node.tests)


def _anyof(run: Run, frame: Frame, node: Test) -> bool:
    return any(run.test(frame, test) for test in node.tests)


def _not(run: Run, frame: Frame, node: Test) -> bool:
    return not run.test(frame, node.tests[0])


def _header(run: Run, frame: Frame, node: Test) -> bool:
    names, keys = (run.strings(frame, arg) for arg in node.positional)
    values = []
    for name in names:
        values += indexed(node, run.message.decoded(name))
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
        for value in indexed(node, run.message.values(name)):
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


TESTS = {
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
    **EXTENSION_TESTS,
}

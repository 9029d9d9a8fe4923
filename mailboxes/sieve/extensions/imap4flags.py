"""imap4flags (RFC 5232): the internal flags variable, setflag/addflag/removeflag, hasflag and
the :flags of keep and fileinto."""

from __future__ import annotations

import re

from mailboxes.flags import system_flag
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Command, Test

_KEYWORD = re.compile(r'[^\x00-\x20\x7f-\U0010ffff(){%*"\\\]]+\Z')  # RFC 9051 atom


def flag_list(values: list[str]) -> list[str]:
    """Flags split at spaces, each once (compared without case, RFC 5232 3); a flag IMAP
    cannot store is ignored (RFC 5232 2): a system flag other than the five a client may
    set, or a keyword that is no IMAP atom."""
    result: list[str] = []
    seen: set[str] = set()
    for value in values:
        for flag in value.split():
            if flag.startswith("\\"):
                if system_flag(flag) is None:
                    continue
            elif not _KEYWORD.match(flag):
                continue
            if flag.lower() not in seen:
                seen.add(flag.lower())
                result.append(flag)
    return result


def flags_argument(run: Run, frame: Frame, node: Command) -> tuple[str, ...]:
    """RFC 5232 5: :flags, else the internal variable when imap4flags is in use."""
    found = node.tagged.get(":flags")
    if found:
        return tuple(flag_list(run.strings(frame, found[1])))
    return tuple(run.flags) if "imap4flags" in frame.script.requires else ()


def _flag_command(run: Run, frame: Frame, node: Command) -> None:
    if len(node.positional) == 2:
        name = node.positional[0].values[0]
        current = flag_list([run.lookup(frame, name.lower()) or ""])
    else:
        name, current = None, run.flags
    given = flag_list(run.strings(frame, node.positional[-1]))
    if node.name == "setflag":
        new = given
    elif node.name == "addflag":
        new = flag_list([*current, *given])
    else:
        removed = {flag.lower() for flag in given}
        new = [flag for flag in current if flag.lower() not in removed]
    if name is None:
        run.flags = list(new)
    else:
        run.assign(frame, name, " ".join(new))


def _hasflag(run: Run, frame: Frame, node: Test) -> bool:
    keys = run.strings(frame, node.positional[-1])
    if len(node.positional) == 2:
        names = node.positional[0].values
        flags = flag_list([run.lookup(frame, name.lower()) or "" for name in names])
    else:
        flags = list(run.flags)
    keys = flag_list(keys) if node.tagged.get("match", (":is",))[0] == ":is" else keys
    return run.match(frame, node, flags, keys)


COMMANDS = {"setflag": _flag_command, "addflag": _flag_command, "removeflag": _flag_command}


TESTS = {"hasflag": _hasflag}

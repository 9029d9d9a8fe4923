"""The commands a script runs (everything but if/elsif/else, which interpreter.py walks)."""

from __future__ import annotations

import hashlib
import re

from mailboxes.sieve import actions as act
from mailboxes.sieve import strings
from mailboxes.sieve.check import ADDRESS, FIELD_NAME, SPECIAL_USE, _angle
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.interpreter import Frame, Return, Run, Stop
from mailboxes.sieve.parser import Command

# RFC 5293 6: what editheader may not touch (Pigeonhole protects the same two).
PROTECTED_HEADERS = frozenset({"received", "auto-submitted"})
DEFAULT_VACATION_DAYS = 7  # RFC 5230 4.1 leaves the default to us; Pigeonhole's


def _stop(run: Run, frame: Frame, node: Command) -> None:
    raise Stop


def _return(run: Run, frame: Frame, node: Command) -> None:
    raise Return


# -- RFC 5228 4: actions ------------------------------------------------------------------


def _flags_argument(run: Run, frame: Frame, node: Command) -> tuple[str, ...]:
    """RFC 5232 5: :flags, else the internal variable when imap4flags is in use."""
    found = node.tagged.get(":flags")
    if found:
        return tuple(_flag_list(run.strings(frame, found[1])))
    return tuple(run.flags) if "imap4flags" in frame.script.requires else ()


def _keep(run: Run, frame: Frame, node: Command) -> None:
    run.add(act.Keep(flags=_flags_argument(run, frame, node)), cancels_keep=True)


def _discard(run: Run, frame: Frame, node: Command) -> None:
    run.add(act.Discard(), cancels_keep=True)


def _fileinto(run: Run, frame: Frame, node: Command) -> None:
    mailbox = run.string(frame, node.positional[0])
    if not mailbox:
        raise SieveRuntimeError("fileinto needs a mailbox name")
    copy = ":copy" in node.tagged
    mailboxid = run.tag_string(frame, node, ":mailboxid")
    specialuse = run.tag_string(frame, node, ":specialuse")
    if specialuse is not None and not SPECIAL_USE.match(specialuse):
        raise SieveRuntimeError(f"invalid special-use attribute {specialuse!r}")
    action = act.FileInto(
        mailbox=mailbox,
        flags=_flags_argument(run, frame, node),
        copy=copy,
        create=":create" in node.tagged,
        specialuse=specialuse,
        mailboxid=mailboxid,
    )
    run.add(action, cancels_keep=not copy)


def _redirect(run: Run, frame: Frame, node: Command) -> None:
    address = _angle(run.string(frame, node.positional[0]))
    if not ADDRESS.match(address):
        raise SieveRuntimeError(f"redirect to an invalid address {address!r}")
    copy = ":copy" in node.tagged
    run.add(act.Redirect(address=address, copy=copy), cancels_keep=not copy)


def _reject(run: Run, frame: Frame, node: Command) -> None:
    reason = run.string(frame, node.positional[0])
    run.add(act.Reject(reason=reason, extended=node.name == "ereject"), cancels_keep=True)


# -- RFC 5232 imap4flags --------------------------------------------------------------------


_SETTABLE_SYSTEM_FLAGS = frozenset({"\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"})
_KEYWORD = re.compile(r'[^\x00-\x20\x7f-\U0010ffff(){%*"\\\]]+\Z')  # RFC 9051 atom


def _flag_list(values: list[str]) -> list[str]:
    """Flags split at spaces, each once (compared without case, RFC 5232 3); a flag IMAP
    cannot store is ignored (RFC 5232 2): a system flag other than the five a client may
    set, or a keyword that is no IMAP atom."""
    result: list[str] = []
    seen: set[str] = set()
    for value in values:
        for flag in value.split():
            if flag.startswith("\\"):
                if flag.lower() not in _SETTABLE_SYSTEM_FLAGS:
                    continue
            elif not _KEYWORD.match(flag):
                continue
            if flag.lower() not in seen:
                seen.add(flag.lower())
                result.append(flag)
    return result


def _flag_command(run: Run, frame: Frame, node: Command) -> None:
    if len(node.positional) == 2:
        name = node.positional[0].values[0]
        current = _flag_list([run.lookup(frame, name.lower()) or ""])
    else:
        name, current = None, run.flags
    given = _flag_list(run.strings(frame, node.positional[-1]))
    if node.name == "setflag":
        new = given
    elif node.name == "addflag":
        new = _flag_list([*current, *given])
    else:
        removed = {flag.lower() for flag in given}
        new = [flag for flag in current if flag.lower() not in removed]
    if name is None:
        run.flags = list(new)
    else:
        run.assign(frame, name, " ".join(new))


# -- RFC 5229 variables -------------------------------------------------------------------


def _set(run: Run, frame: Frame, node: Command) -> None:
    value = run.string(frame, node.positional[1])
    # RFC 5229 4.1: modifiers apply from the highest precedence down.
    for group in ("modifier-40", "modifier-30", "modifier-20", "modifier-15", "modifier-10"):
        found = node.tagged.get(group)
        if found:
            value = _MODIFIERS[found[0]](value)
    run.assign(frame, node.positional[0].values[0], value)


def _quote_regex(value: str) -> str:
    return "".join("\\" + c if c in "\\^$.[]|()?*+{}" else c for c in value)


def _encode_url(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="-._~")  # RFC 5435 6: RFC 3986 unreserved stay


_MODIFIERS = {
    ":lower": str.lower,
    ":upper": str.upper,
    ":lowerfirst": lambda v: v[:1].lower() + v[1:],
    ":upperfirst": lambda v: v[:1].upper() + v[1:],
    ":quotewildcard": strings.quote_wildcards,
    ":quoteregex": _quote_regex,
    ":encodeurl": _encode_url,
    ":length": lambda v: str(len(v)),
}


# -- RFC 5230 / 6131 vacation ---------------------------------------------------------------


def _vacation(run: Run, frame: Frame, node: Command) -> None:
    reason = run.string(frame, node.positional[0])
    subject = run.tag_string(frame, node, ":subject")
    sender = run.tag_string(frame, node, ":from")
    handle = run.tag_string(frame, node, ":handle")
    addresses = node.tagged.get(":addresses")
    addresses = tuple(run.strings(frame, addresses[1])) if addresses else ()
    mime = ":mime" in node.tagged
    period = node.tagged.get("period")
    days = None
    if period is None:
        days = DEFAULT_VACATION_DAYS
        seconds = days * 86400
    elif period[0] == ":days":
        days = period[1].value
        seconds = days * 86400
    else:
        seconds = period[1].value
    if sender is not None and not ADDRESS.match(_angle(sender)):
        raise SieveRuntimeError(f"vacation :from is not a valid address: {sender!r}")
    if not handle:
        # RFC 5230 4.2: without :handle, the same arguments are the same vacation.
        key = "\0".join([reason, subject or "", sender or "", "mime" if mime else ""])
        handle = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    action = act.Vacation(
        reason=reason,
        subject=subject,
        from_address=sender,
        addresses=addresses,
        mime=mime,
        handle=handle,
        seconds=seconds,
        days=days,
    )
    run.add(action, cancels_keep=False)


# -- RFC 5435 enotify ---------------------------------------------------------------------


def _notify(run: Run, frame: Frame, node: Command) -> None:
    from mailboxes.sieve import notify

    method = run.string(frame, node.positional[0])
    problem = notify.method_problem(method)
    if problem:
        raise SieveRuntimeError(problem)
    method = "mailto:" + method[len("mailto:") :]  # the scheme ignores case (RFC 3986 3.1)
    importance = run.tag_string(frame, node, ":importance", "2")
    if importance not in ("1", "2", "3"):
        raise SieveRuntimeError(':importance must be "1", "2" or "3"')
    options = node.tagged.get(":options")
    action = act.Notify(
        method=method,
        from_address=run.tag_string(frame, node, ":from"),
        importance=importance,
        options=tuple(run.strings(frame, options[1])) if options else (),
        message=run.tag_string(frame, node, ":message"),
    )
    run.add(action, cancels_keep=False)


# -- RFC 5293 editheader ------------------------------------------------------------------


def _addheader(run: Run, frame: Frame, node: Command) -> None:
    name = run.string(frame, node.positional[0])
    value = run.string(frame, node.positional[1])
    if not FIELD_NAME.match(name):
        raise SieveRuntimeError(f"invalid header field name {name!r}")
    if name.lower() in PROTECTED_HEADERS:
        return  # RFC 5293 6: silently left alone
    last = ":last" in node.tagged
    # RFC 5293 4: a folded value is unfolded (RFC 5322 2.2.3); a line end not followed by
    # white space cannot be in a field and becomes a space.
    value = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r\n", " ").replace("\n", " ")
    run.message.add(name, value, last)
    run.edits.append(act.AddHeader(name=name, value=value, last=last))


def _deleteheader(run: Run, frame: Frame, node: Command) -> None:
    name = run.string(frame, node.positional[0])
    if not FIELD_NAME.match(name) or name.lower() in PROTECTED_HEADERS:
        return
    values = run.message.decoded(name)
    positions = list(range(1, len(values) + 1))
    index = node.tagged.get(":index")
    if index:
        n = index[1].value
        if ":last" in node.tagged:
            n = len(values) + 1 - n
        positions = [n] if 1 <= n <= len(values) else []
    if len(node.positional) == 2:
        keys = run.strings(frame, node.positional[1])
        positions = [p for p in positions if run.match(frame, node, [values[p - 1]], keys)]
    if positions:
        run.message.delete(name, set(positions))
        run.edits.append(act.DeleteHeader(name=name, occurrences=tuple(positions)))


# -- RFC 6609 include ---------------------------------------------------------------------


def _include(run: Run, frame: Frame, node: Command) -> None:
    from mailboxes.sieve import compile as compile_script
    from mailboxes.sieve.errors import SieveSyntaxError

    name = run.string(frame, node.positional[0])
    location = "global" if node.tagged.get("location", ("",))[0] == ":global" else "personal"
    key = (location, name)
    if ":once" in node.tagged and key in run.included:
        return
    if key in run.include_stack:
        raise SieveRuntimeError(f"include loop: {location} script {name!r} includes itself")
    if len(run.include_stack) >= run.limits.max_include_depth:
        raise SieveRuntimeError(f"includes nested deeper than {run.limits.max_include_depth}")
    run.include_count += 1
    if run.include_count > run.limits.max_includes:
        raise SieveRuntimeError(f"more than {run.limits.max_includes} includes")
    loader = run.context.include
    text = loader(name, location) if loader else None
    if text is None:
        if ":optional" in node.tagged:
            return
        raise SieveRuntimeError(f"included {location} script {name!r} does not exist")
    try:
        script = compile_script(text)
    except SieveSyntaxError as error:
        raise SieveRuntimeError(f"included script {name!r}: {error.errors[0]}") from None
    run.included.add(key)
    run.include_stack.append(key)
    try:
        run.execute(Frame(script), script.commands)
    except Return:
        pass
    finally:
        run.include_stack.pop()


def _global(run: Run, frame: Frame, node: Command) -> None:
    for name in node.positional[0].values:
        frame.global_names.add(name.lower())


def _error(run: Run, frame: Frame, node: Command) -> None:
    """RFC 5463 5: the script fails on purpose."""
    raise SieveRuntimeError(run.string(frame, node.positional[0]))


COMMANDS = {
    "error": _error,
    "stop": _stop,
    "return": _return,
    "keep": _keep,
    "discard": _discard,
    "fileinto": _fileinto,
    "redirect": _redirect,
    "reject": _reject,
    "ereject": _reject,
    "setflag": _flag_command,
    "addflag": _flag_command,
    "removeflag": _flag_command,
    "set": _set,
    "vacation": _vacation,
    "notify": _notify,
    "addheader": _addheader,
    "deleteheader": _deleteheader,
    "include": _include,
    "global": _global,
}

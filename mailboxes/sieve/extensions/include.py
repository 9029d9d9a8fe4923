"""include (RFC 6609): include, return and global; scripts come from the context's loader."""

from __future__ import annotations

from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.interpreter import Frame, Return, Run
from mailboxes.sieve.parser import Command


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


def _return(run: Run, frame: Frame, node: Command) -> None:
    raise Return


def _global(run: Run, frame: Frame, node: Command) -> None:
    for name in node.positional[0].values:
        frame.global_names.add(name.lower())


COMMANDS = {"include": _include, "return": _return, "global": _global}

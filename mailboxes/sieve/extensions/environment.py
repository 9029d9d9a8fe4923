"""environment (RFC 5183), ihave and error (RFC 5463)."""

from __future__ import annotations

from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.interpreter import Frame, Run
from mailboxes.sieve.parser import Command, Test

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


def _error(run: Run, frame: Frame, node: Command) -> None:
    """RFC 5463 5: the script fails on purpose."""
    raise SieveRuntimeError(run.string(frame, node.positional[0]))


COMMANDS = {"error": _error}


TESTS = {"environment": _environment, "ihave": _ihave}

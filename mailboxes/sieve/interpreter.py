"""Running a compiled script against one message (RFC 5228 2.10): control flow, variables,
the budget, and the action list with its conflicts. The commands and tests themselves are in
commands.py and conditions.py.

A run never raises for the script's sake: a run-time error ends the run with the errors, no
actions and the implicit keep, so no mail is lost (RFC 5228 2.10.6).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mailboxes.sieve import actions as act
from mailboxes.sieve import match as matching
from mailboxes.sieve import strings
from mailboxes.sieve.errors import SieveRuntimeError
from mailboxes.sieve.message import Message
from mailboxes.sieve.parser import Command, StringArg, Test

# RFC 5229 leaves sizes to us. Values are cut to Pigeonhole's default variable size, so
# `set "a" "${a}${a}"` in a loop of includes cannot double its way through memory.
MAX_VARIABLE_SIZE = 4096


@dataclass
class Script:
    commands: list[Command]
    requires: frozenset[str]
    text: str = ""


class Stop(Exception):
    """`stop` (RFC 5228 3.3): the whole run ends."""


class Return(Exception):
    """`return` (RFC 6609 3.3): the current script ends, its includer goes on."""


@dataclass
class Frame:
    """One script's variables (RFC 5229) while it runs; included scripts get their own."""

    script: Script
    variables: dict[str, str] = field(default_factory=dict)
    match: list[str] = field(default_factory=list)
    global_names: set[str] = field(default_factory=set)

    @property
    def has_variables(self) -> bool:
        return "variables" in self.script.requires


class Run:
    def __init__(self, context: act.SieveContext) -> None:
        self.context = context
        self.limits = context.limits
        self.message = Message(context.raw)
        self.actions: list = []
        self.implicit_keep = True
        self.flags: list[str] = []  # RFC 5232 3: the internal variable
        self.globals: dict[str, str] = {}
        self.edits = act.HeaderEdits()
        self.steps = 0
        # The thread's CPU time: deliveries run side by side in threads of one process.
        self.cpu_start = time.thread_time()
        self.include_stack: list[tuple[str, str]] = []
        self.included: set[tuple[str, str]] = set()
        self.include_count = 0
        self.now = context.now or act.utc_now()

    # -- budget -----------------------------------------------------------------------

    def step(self, node) -> None:  # noqa: ANN001
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise SieveRuntimeError(
                f"the script ran more than {self.limits.max_steps} steps", node.line, node.column
            )
        if self.steps % 64 == 0 and time.thread_time() - self.cpu_start > self.limits.cpu_seconds:
            raise SieveRuntimeError(
                f"the script used more than {self.limits.cpu_seconds} s of CPU",
                node.line,
                node.column,
            )

    # -- control flow -----------------------------------------------------------------

    def execute(self, frame: Frame, commands: list[Command]) -> None:
        from mailboxes.sieve.commands import COMMANDS

        branch_taken = False
        for command in commands:
            self.step(command)
            name = command.name
            if name in ("if", "elsif", "else"):
                if name == "if":
                    branch_taken = False
                if branch_taken:
                    continue
                if name == "else" or self.test(frame, command.tests[0]):
                    branch_taken = True
                    self.execute(frame, command.block)
                continue
            if name == "require":
                continue
            try:
                COMMANDS[name](self, frame, command)
            except SieveRuntimeError as error:
                if not error.error.line:
                    raise SieveRuntimeError(
                        error.error.message, command.line, command.column
                    ) from None
                raise

    def test(self, frame: Frame, test: Test) -> bool:
        from mailboxes.sieve.conditions import TESTS

        self.step(test)
        return TESTS[test.name](self, frame, test)

    # -- strings and variables --------------------------------------------------------

    def lookup(self, frame: Frame, name: str) -> str | None:
        if name.isdigit():
            index = int(name)
            return frame.match[index] if index < len(frame.match) else ""
        if name.startswith("global."):
            return self.globals.get(name[7:], "")
        if "." in name:
            return ""  # a namespace nobody here knows: empty, as in Pigeonhole
        if name in frame.global_names:
            return self.globals.get(name, "")
        return frame.variables.get(name, "")

    def assign(self, frame: Frame, name: str, value: str) -> None:
        name = name.lower()
        value = value[:MAX_VARIABLE_SIZE]
        if name.startswith("global."):
            self.globals[name[7:]] = value
        elif name in frame.global_names:
            self.globals[name] = value
        else:
            frame.variables[name] = value

    def expand(self, frame: Frame, value: str) -> str:
        if not frame.has_variables:
            return value
        return strings.expand(value, lambda name: self.lookup(frame, name))

    def string(self, frame: Frame, arg: StringArg) -> str:
        return self.expand(frame, arg.values[0])

    def strings(self, frame: Frame, arg: StringArg) -> list[str]:
        return [self.expand(frame, value) for value in arg.values]

    def tag_string(self, frame: Frame, node, tag: str, default: str | None = None):  # noqa: ANN001, ANN201
        found = node.tagged.get(tag)
        return self.string(frame, found[1]) if found else default

    # -- matching ---------------------------------------------------------------------

    def match(
        self, frame: Frame, node, values: list[str], keys: list[str], count: int | None = None
    ) -> bool:  # noqa: ANN001
        """The node's comparator and match type over values and keys; a :matches or :regex
        success sets the match variables (RFC 5229 3.2)."""
        comparator = node.tagged.get("comparator")
        comparator = comparator[1].values[0] if comparator else "i;ascii-casemap"
        match_type, param = node.tagged.get("match", (":is", None))
        relation = self.string(frame, param).lower() if isinstance(param, StringArg) else "eq"
        if match_type in (":count", ":value") and relation not in matching._RELATIONS:
            raise SieveRuntimeError(f"invalid relational operator {relation!r}")
        found = matching.match(
            values,
            keys,
            match_type=match_type,
            comparator=comparator,
            relation=relation,
            count=count,
        )
        if found is None:
            return False
        if match_type in (":matches", ":regex") and frame.has_variables:
            frame.match = [value[:MAX_VARIABLE_SIZE] for value in found]
        return True

    # -- actions ----------------------------------------------------------------------

    def add(self, action: object, cancels_keep: bool) -> None:
        """Record an action; RFC 5228 2.10.3 (the same action twice is one), RFC 5429 2
        (reject excludes keep, fileinto, redirect, vacation and another reject)."""
        delivering = (act.Keep, act.FileInto, act.Redirect)
        for index, previous in enumerate(self.actions):
            if isinstance(action, act.Reject) and isinstance(
                previous, (*delivering, act.Vacation, act.Reject)
            ):
                raise SieveRuntimeError(
                    f"reject conflicts with an earlier {type(previous).__name__.lower()}"
                )
            if isinstance(previous, act.Reject) and isinstance(action, (*delivering, act.Vacation)):
                raise SieveRuntimeError(f"{type(action).__name__.lower()} conflicts with reject")
            if isinstance(action, act.Vacation) and isinstance(previous, act.Vacation):
                raise SieveRuntimeError("vacation may run only once (RFC 5230 4.7)")
            merged = _merge(previous, action)
            if merged is not None:
                self.actions[index] = merged
                if cancels_keep:
                    self.implicit_keep = False
                return
        if len(self.actions) >= self.limits.max_actions:
            raise SieveRuntimeError(f"more than {self.limits.max_actions} actions")
        if isinstance(action, act.Redirect):
            redirects = sum(isinstance(a, act.Redirect) for a in self.actions)
            if redirects >= self.limits.max_redirects:
                raise SieveRuntimeError(f"more than {self.limits.max_redirects} redirects")
        self.actions.append(action)
        if cancels_keep:
            self.implicit_keep = False


def _merge(previous: object, action: object) -> object | None:
    """The one action that stands for both when they are duplicates, else None."""
    if {type(previous), type(action)} == {act.Keep, act.FileInto}:
        # RFC 5228 4.1: keep is fileinto "INBOX"; the first of the two stands.
        into = previous if isinstance(previous, act.FileInto) else action
        if _mailbox_key(into.mailbox) != "INBOX" or into.mailboxid or into.specialuse or into.copy:
            return None
        flags = action.flags
        if isinstance(previous, act.Keep):
            return act.Keep(flags=flags)
        return act.FileInto(mailbox=previous.mailbox, flags=flags, create=previous.create)
    if type(previous) is not type(action):
        return None
    # RFC 5232 leaves flags of a duplicate store open: the last :flags stand, as in Pigeonhole.
    if isinstance(action, act.Keep):
        return act.Keep(flags=action.flags)
    if isinstance(action, act.FileInto):
        if _mailbox_key(previous.mailbox) != _mailbox_key(action.mailbox):
            return None
        if (previous.mailboxid, previous.specialuse) != (action.mailboxid, action.specialuse):
            return None
        return act.FileInto(
            mailbox=previous.mailbox,
            flags=action.flags,
            copy=previous.copy and action.copy,
            create=previous.create or action.create,
            specialuse=previous.specialuse,
            mailboxid=previous.mailboxid,
        )
    if isinstance(action, act.Redirect):
        if _address_key(previous.address) != _address_key(action.address):
            return None
        return act.Redirect(previous.address, copy=previous.copy and action.copy)
    if isinstance(action, act.Discard):
        return previous
    if isinstance(action, act.Notify) and previous == action:
        return previous
    return None


def _address_key(address: str) -> str:
    """Local parts are case-sensitive (RFC 5321 2.4), domains are not."""
    local, at, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}" if at else address


def _mailbox_key(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    seen = {flag.lower() for flag in a}
    return a + tuple(flag for flag in b if flag.lower() not in seen)


def run(script: Script, context: act.SieveContext) -> act.SieveResult:
    """Run `script` against the message in `context`; never raises for the script's sake."""
    state = Run(context)
    try:
        state.execute(Frame(script), script.commands)
    except Stop:
        pass
    except Return:
        pass
    except SieveRuntimeError as error:
        return act.SieveResult(
            actions=[],
            implicit_keep=True,
            implicit_keep_flags=(),
            errors=[error.error],
            header_edits=act.HeaderEdits(),
        )
    except RecursionError:
        return act.SieveResult(
            errors=[SieveRuntimeError("the script or the message nests too deeply").error]
        )
    return act.SieveResult(
        actions=state.actions,
        implicit_keep=state.implicit_keep,
        implicit_keep_flags=tuple(state.flags),
        errors=[],
        header_edits=state.edits,
    )

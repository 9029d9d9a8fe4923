"""Validation of a parsed script against grammar.py (RFC 5228 2.6, 3.2, 8.2), and against
each extension's own rules where an argument is a constant.

check_script fills each node's .tagged ({group or tag: (tag, value)}) and .positional, so the
interpreter reads arguments by name and never re-parses them.
"""

from __future__ import annotations

import re

from mailboxes.sieve import grammar, strings
from mailboxes.sieve.errors import SieveError
from mailboxes.sieve.parser import Command, NumberArg, StringArg, TagArg, Test

# RFC 5228 5.1: the headers an address test may read (the ones Pigeonhole 0.5.19 allows).
ADDRESS_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "resent-reply-to",
        "delivered-to",
        "x-original-to",
        "mail-followup-to",
        "mail-reply-to",
        "errors-to",
        "return-receipt-to",
        "x-beenthere",
    }
)
# RFC 5228 5.4, and "auth" (the RFC 4954 AUTH= identity) as Pigeonhole has it
ENVELOPE_PARTS = frozenset({"from", "to", "auth"})
FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")  # RFC 5322 3.6.8 ftext
ZONE = re.compile(r"[+-](?:[01][0-9]|2[0-3])[0-5][0-9]\Z")  # RFC 5260 4.1, hours below 24
NOTIFY_OPTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*=", re.DOTALL)  # RFC 5435 3.7
SPECIAL_USE = re.compile(r"\\[A-Za-z][A-Za-z0-9]*\Z")
# A loose RFC 5321 mailbox: what redirect, vacation :from and :addresses may name.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_ATEXT_DOTS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+\Z")
ADDRESS = re.compile(r'(?:[^\s@<>()\[\],;:"]+|"[^"]*")@[^\s@<>()\[\],;:"]+\Z')


class _Checker:
    def __init__(self) -> None:
        self.errors: list[SieveError] = []
        self.requires: set[str] = set()
        self.locals: set[str] = set()  # variables set so far, for RFC 6609 global

    def error(self, node, message: str) -> None:  # noqa: ANN001 - any node with a position
        self.errors.append(SieveError(node.line, node.column, message))

    def variables(self) -> bool:
        return "variables" in self.requires

    def constant(self, arg: StringArg) -> bool:
        """The string's value is known now (no variable reference to expand at run time)."""
        return not (self.variables() and any(strings.has_references(v) for v in arg.values))

    # -- the script ---------------------------------------------------------------------

    def script(self, commands: list[Command]) -> None:
        in_header = True
        for command in commands:
            if command.name == "require":
                if not in_header:
                    self.error(command, "require must come before any other command")
                self.require(command)
            else:
                in_header = False
        self._decode_all(commands)
        self.block(commands, top=True)

    def require(self, command: Command) -> None:
        args = list(command.args)
        if len(args) != 1 or not isinstance(args[0], StringArg) or command.tests or command.block:
            self.error(command, "require takes one string list of extension names")
            return
        for name in args[0].values:
            if name in grammar.CAPABILITIES or name in grammar.IMPLICIT_CAPABILITIES:
                self.requires.add(name)
                self.requires.update(grammar.IMPLIES.get(name, ()))
            else:
                self.error(args[0], f"unknown extension {name!r} in require")
        command.positional = args

    def _decode_all(self, commands: list[Command]) -> None:
        """RFC 5228 2.4.2.4: with "encoded-character" required, every string is decoded."""
        if "encoded-character" not in self.requires:
            return
        for node in _walk(commands):
            for arg in node.args:
                if isinstance(arg, StringArg):
                    for i, value in enumerate(arg.values):
                        arg.values[i], problem = strings.decode_encoded(value)
                        if problem:
                            self.error(arg, problem)

    def block(self, commands: list[Command], top: bool = False) -> None:
        previous = None
        for command in commands:
            if command.name in ("elsif", "else") and (
                previous is None or previous.name not in ("if", "elsif")
            ):
                self.error(command, f"{command.name} must follow if or elsif")
            if command.name == "require" and not top:
                self.error(command, "require is only allowed at the top of the script")
            if command.name != "require":
                self.node(command, is_test=False)
            if command.block is not None:
                guarded = self._ihave(command)
                if guarded is None:
                    self.block(command.block)
                elif all(name in grammar.CAPABILITIES for name in guarded):
                    # RFC 5463 4: the block may use what the test asked for
                    saved = set(self.requires)
                    self.requires.update(guarded)
                    self.block(command.block)
                    self.requires = saved
                # else: an extension we lack; the block never runs and is not checked
            previous = command

    def _ihave(self, command: Command) -> list[str] | None:
        """The extensions an `if ihave [...]` asks for, when its argument is a constant."""
        if command.name not in ("if", "elsif") or len(command.tests) != 1:
            return None
        test = command.tests[0]
        if test.name != "ihave" or "ihave" not in self.requires or len(test.args) != 1:
            return None
        arg = test.args[0]
        if not isinstance(arg, StringArg) or not self.constant(arg):
            return None
        return list(arg.values)

    # -- one command or test ------------------------------------------------------------

    def node(self, node, is_test: bool) -> None:  # noqa: ANN001 - Command or Test
        what = "test" if is_test else "command"
        spec = grammar.SPECS.get(node.name)
        if spec is None or spec.is_test != is_test:
            if spec is not None:
                other = "a test" if spec.is_test else "a command"
                self.error(node, f"{node.name!r} is {other}, not a {what}")
            else:
                self.error(node, f"unknown {what} {node.name!r}")
            return
        if spec.extension and spec.extension not in self.requires:
            self.error(node, f"{what} {node.name!r} needs require {spec.extension!r}")
            return
        if not self.arguments(node, spec):
            return
        self.test_shape(node, spec, what)
        for test in node.tests if spec.tests != "none" else ():
            self.node(test, is_test=True)
        validate = _VALIDATORS.get(node.name)
        if validate:
            validate(self, node)
        if "comparator" in node.tagged or "match" in node.tagged:
            self.match_arguments(node)

    def arguments(self, node, spec: grammar.Spec) -> bool:  # noqa: ANN001
        tags = {tag.name: tag for tag in spec.tags}
        args = node.args
        i = 0
        positional = []
        ok = True
        while i < len(args):
            arg = args[i]
            i += 1
            if not isinstance(arg, TagArg):
                positional.append(arg)
                continue
            if positional:
                self.error(arg, f"tagged argument {arg.name} after a positional argument")
                ok = False
                continue
            tag = tags.get(arg.name)
            if tag is None:
                self.error(arg, f"unknown tagged argument {arg.name} for {node.name!r}")
                ok = False
                continue
            if tag.extension and tag.extension not in self.requires:
                self.error(arg, f"{arg.name} needs require {tag.extension!r}")
                ok = False
            value: object = True
            if tag.param:
                if i >= len(args) or not _fits(args[i], tag.param):
                    self.error(arg, f"{arg.name} must be followed by a {_words(tag.param)}")
                    ok = False
                    continue
                value = args[i]
                i += 1
            key = tag.group or tag.name
            if key in node.tagged:
                self.error(arg, f"{arg.name} conflicts with {node.tagged[key][0]}")
                ok = False
                continue
            node.tagged[key] = (arg.name, value)
        index = node.tagged.get(":index")
        if index and getattr(index[1], "value", 1) < 1:  # RFC 5260 6: fields count from 1
            self.error(index[1], ":index counts from 1")
            ok = False
        for tag in spec.tags:
            if tag.needs and tag.name in node.tagged and tag.needs not in node.tagged:
                self.error(node, f"{tag.name} needs {tag.needs}")
                ok = False
        for form in spec.forms:
            if len(form) == len(positional) and all(map(_fits, positional, form)):
                node.positional = positional
                return ok
        if not ok:  # the positional count is off because of the tag already reported
            return False
        expected = " or ".join(
            ", ".join(_words(kind) for kind in form) or "no argument" for form in spec.forms
        )
        self.error(node, f"{node.name!r} expects {expected}")
        return False

    def test_shape(self, node, spec: grammar.Spec, what: str) -> None:  # noqa: ANN001
        if spec.tests == "none" and node.tests:
            self.error(node.tests[0], f"{what} {node.name!r} takes no test")
        elif spec.tests == "one" and (len(node.tests) != 1 or node.test_list):
            self.error(node, f"{what} {node.name!r} needs exactly one test")
        elif spec.tests == "list" and not node.test_list:
            self.error(node, f"test {node.name!r} needs a test list in parentheses")
        if spec.block and node.block is None:
            self.error(node, f"{what} {node.name!r} needs a block")
        elif not spec.block and getattr(node, "block", None) is not None:
            self.error(node, f"{what} {node.name!r} takes no block")

    def match_arguments(self, node) -> None:  # noqa: ANN001
        comparator = "i;ascii-casemap"
        if "comparator" in node.tagged:
            arg = node.tagged["comparator"][1]
            # RFC 4790 3.1: comparator names are compared without case
            comparator = arg.values[0] = arg.values[0].lower()
            if comparator not in grammar.COMPARATORS:
                self.error(arg, f"unknown comparator {comparator!r}")
                return
            needed = grammar.COMPARATORS[comparator]
            if needed and needed not in self.requires:
                self.error(arg, f"comparator {comparator!r} needs require {needed!r}")
        match, param = node.tagged.get("match", (":is", None))
        if comparator == "i;ascii-numeric" and match in (":contains", ":matches", ":regex"):
            self.error(node, f"comparator 'i;ascii-numeric' does not support {match}")
        if match in (":count", ":value") and self.constant(param):
            if param.values[0].lower() not in grammar.RELATIONS:
                self.error(param, f"{match} needs one of {', '.join(sorted(grammar.RELATIONS))}")
        if match == ":regex":
            from mailboxes.sieve import match as matching

            for arg in node.positional[-1:]:
                if self.constant(arg):
                    for value in arg.values:
                        problem = matching.regex_problem(value)
                        if problem:
                            self.error(arg, f"bad regular expression {value!r}: {problem}")


def _fits(arg, kind: str) -> bool:  # noqa: ANN001
    if kind == "number":
        return isinstance(arg, NumberArg)
    if kind == "string":
        return isinstance(arg, StringArg) and not arg.is_list
    return isinstance(arg, StringArg)


def _words(kind: str) -> str:
    return {"string": "string", "strings": "string list", "number": "number"}[kind]


def _walk(commands: list[Command]):  # noqa: ANN202 - yields every node
    for command in commands:
        yield command
        yield from _walk_tests(command.tests)
        if command.block:
            yield from _walk(command.block)


def _walk_tests(tests: list[Test]):  # noqa: ANN202
    for test in tests:
        yield test
        yield from _walk_tests(test.tests)


# -- per-command checks of constant arguments ----------------------------------------------


def _check_address(checker: _Checker, node: Test) -> None:
    headers = node.positional[0]
    if checker.constant(headers):
        for name in headers.values:
            if name.lower() not in ADDRESS_HEADERS:
                checker.error(headers, f"header {name!r} holds no addresses (address test)")


def _check_envelope(checker: _Checker, node: Test) -> None:
    parts = node.positional[0]
    if checker.constant(parts):
        for name in parts.values:
            if name.lower() not in ENVELOPE_PARTS:
                checker.error(parts, f"unknown envelope part {name!r}")


def _check_size(checker: _Checker, node: Test) -> None:
    if "size" not in node.tagged:
        checker.error(node, "size needs :over or :under")


def _check_redirect(checker: _Checker, node: Command) -> None:
    arg = node.positional[0]
    # RFC 5228 2.4.2.3: an addr-spec, or a phrase and <addr-spec>, as the run accepts.
    if checker.constant(arg) and not ADDRESS.match(_angle(arg.values[0])):
        checker.error(arg, f"redirect to an invalid address {arg.values[0]!r}")


def _check_fileinto(checker: _Checker, node: Command) -> None:
    arg = node.positional[0]
    if checker.constant(arg) and not arg.values[0]:
        checker.error(arg, "fileinto needs a mailbox name")
    specialuse = node.tagged.get(":specialuse")
    if specialuse and checker.constant(specialuse[1]):
        _check_specialuse_flags(checker, specialuse[1])


def _check_specialuse_flags(checker: _Checker, arg: StringArg) -> None:
    """RFC 8579 3: special-use attributes are IMAP flags like "\\Junk" (RFC 6154)."""
    for value in arg.values:
        if not SPECIAL_USE.match(value):
            checker.error(arg, f"invalid special-use attribute {value!r}")


def _check_specialuse_exists(checker: _Checker, node: Test) -> None:
    if checker.constant(node.positional[-1]):
        _check_specialuse_flags(checker, node.positional[-1])


def _check_flag_variable(checker: _Checker, node: Command) -> None:
    if len(node.positional) == 2:
        name = node.positional[0]
        if not checker.variables():
            checker.error(name, f"{node.name} with a variable name needs require 'variables'")
        elif not strings.VARIABLE_NAME.match(name.values[0]):
            checker.error(name, f"invalid variable name {name.values[0]!r}")


def _check_hasflag(checker: _Checker, node: Test) -> None:
    if len(node.positional) == 2:
        names = node.positional[0]
        if not checker.variables():
            checker.error(names, "hasflag with variable names needs require 'variables'")
        for value in names.values:
            if not strings.VARIABLE_NAME.match(value):
                checker.error(names, f"invalid variable name {value!r}")


def _check_set(checker: _Checker, node: Command) -> None:
    name = node.positional[0]
    checker.locals.add(name.values[0].lower())
    if not strings.VARIABLE_NAME.match(name.values[0]):
        checker.error(name, f"invalid variable name {name.values[0]!r}")
    elif "." in name.values[0] and not name.values[0].lower().startswith("global."):
        checker.error(name, f"unknown namespace in variable name {name.values[0]!r}")
    elif name.values[0].lower().startswith("global.") and "include" not in checker.requires:
        checker.error(name, "the global namespace needs require 'include'")


def _check_vacation(checker: _Checker, node: Command) -> None:
    sender = node.tagged.get(":from")
    if sender and checker.constant(sender[1]):
        value = sender[1].values[0]
        if not ADDRESS.match(_angle(value)):
            checker.error(sender[1], f"vacation :from is not a valid address: {value!r}")


def _angle(value: str) -> str:
    """The address inside "Name <address>", or the value itself, normalized: white space
    around the parts dropped (RFC 5322 CFWS) and quotes a dot-atom does not need removed
    ("Sirius"@example.net is Sirius@example.net) or added where dots make it no dot-atom,
    as Pigeonhole sends it."""
    match = re.search(r"<([^<>]*)>\s*\Z", value)
    address = (match.group(1) if match else value).strip()
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    local, domain = local.strip(), domain.strip()
    if len(local) >= 2 and local[0] == local[-1] == '"' and _DOT_ATOM.match(local[1:-1]):
        local = local[1:-1]
    elif not _DOT_ATOM.match(local) and _ATEXT_DOTS.match(local):
        local = f'"{local}"'  # ".a..b" is no dot-atom: SMTP needs it quoted (RFC 5321 4.1.2)
    return f"{local}@{domain}"


def _check_notify(checker: _Checker, node: Command) -> None:
    from mailboxes.sieve.extensions import enotify

    importance = node.tagged.get(":importance")
    if importance and checker.constant(importance[1]):
        if importance[1].values[0] not in ("1", "2", "3"):
            checker.error(importance[1], ':importance must be "1", "2" or "3"')
    options = node.tagged.get(":options")
    if options and checker.constant(options[1]):
        for option in options[1].values:
            if not NOTIFY_OPTION.match(option):
                checker.error(options[1], f"invalid notify option {option!r} (want name=value)")
    method = node.positional[0]
    if checker.constant(method):
        problem = enotify.method_problem(method.values[0])
        if problem:
            checker.error(method, problem)
    sender = node.tagged.get(":from")
    if sender and checker.constant(sender[1]):
        if not ADDRESS.match(_angle(sender[1].values[0])):
            checker.error(sender[1], f"notify :from is not a valid address {sender[1].values[0]!r}")


def _check_date(checker: _Checker, node: Test) -> None:
    # An unknown date part is not an error: the test is false (as in Pigeonhole).
    zone = node.tagged.get("zone")
    if zone and zone[0] == ":zone" and checker.constant(zone[1]):
        if not ZONE.match(zone[1].values[0]):
            checker.error(zone[1], f"invalid time zone {zone[1].values[0]!r} (want +hhmm)")


def _check_editheader(checker: _Checker, node: Command) -> None:
    name = node.positional[0]
    if checker.constant(name) and not FIELD_NAME.match(name.values[0]):
        checker.error(name, f"invalid header field name {name.values[0]!r}")


def _check_include(checker: _Checker, node: Command) -> None:
    name = node.positional[0]
    if not checker.constant(name):  # RFC 6609 3.2: variables are never expanded in the name
        checker.error(name, "the included script's name must be a constant string")
    else:
        value = name.values[0]
        if not value or "/" in value or value in (".", ".."):
            checker.error(name, f"invalid script name {value!r}")


def _check_global(checker: _Checker, node: Command) -> None:
    if not checker.variables():
        checker.error(node, "global needs require 'variables'")
    for value in node.positional[0].values:
        if not re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", value):
            checker.error(node.positional[0], f"invalid global variable name {value!r}")
        elif value.lower() in checker.locals:
            # RFC 6609 3.4: a name is global for the whole script or not at all
            checker.error(node, f"global {value!r} comes after the script used it as local")


_VALIDATORS = {
    "address": _check_address,
    "envelope": _check_envelope,
    "size": _check_size,
    "redirect": _check_redirect,
    "fileinto": _check_fileinto,
    "specialuse_exists": _check_specialuse_exists,
    "setflag": _check_flag_variable,
    "addflag": _check_flag_variable,
    "removeflag": _check_flag_variable,
    "hasflag": _check_hasflag,
    "set": _check_set,
    "vacation": _check_vacation,
    "notify": _check_notify,
    "date": _check_date,
    "currentdate": _check_date,
    "addheader": _check_editheader,
    "deleteheader": _check_editheader,
    "include": _check_include,
    "global": _check_global,
}


def check_script(commands: list[Command]) -> tuple[set[str], list[SieveError]]:
    """The extensions the script requires and the errors found."""
    checker = _Checker()
    checker.script(commands)
    return checker.requires, checker.errors

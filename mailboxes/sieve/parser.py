"""The Sieve grammar (RFC 5228 8.2) into a tree of commands and tests.

Only the shape is checked here; what each command accepts is checked by check.py against the
tables in grammar.py. A syntax error skips to the end of the command and parsing goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailboxes.sieve import lexer
from mailboxes.sieve.errors import SieveError
from mailboxes.sieve.lexer import Token

# A script deeper than this is refused rather than risking Python's recursion limit
# (Pigeonhole's default sieve_max_nesting_depth... of blocks is much lower still).
MAX_NESTING = 64


@dataclass(slots=True)
class StringArg:
    values: list[str]
    is_list: bool  # written as [ ... ]
    line: int
    column: int


@dataclass(slots=True)
class NumberArg:
    value: int
    line: int
    column: int


@dataclass(slots=True)
class TagArg:
    name: str  # with the colon, lower case: ":is"
    line: int
    column: int


Argument = StringArg | NumberArg | TagArg


@dataclass(slots=True)
class Test:
    name: str
    args: list[Argument]
    tests: list[Test]
    line: int
    column: int
    test_list: bool = False  # tests written as ( ... )
    # Filled by check.py: tagged arguments by tag name (value or True) and positionals.
    tagged: dict = field(default_factory=dict)
    positional: list = field(default_factory=list)


@dataclass(slots=True)
class Command:
    name: str
    args: list[Argument]
    tests: list[Test]
    block: list[Command] | None
    line: int
    column: int
    test_list: bool = False
    tagged: dict = field(default_factory=dict)
    positional: list = field(default_factory=list)


class _Abandon(Exception):
    """A syntax error: give up on this command."""


class _Parser:
    def __init__(self, tokens: list[Token], errors: list[SieveError]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.errors = errors
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def fail(self, message: str, token: Token | None = None) -> None:
        token = token or self.token
        self.errors.append(SieveError(token.line, token.column, message))
        raise _Abandon

    def is_punct(self, char: str) -> bool:
        return self.token.kind == lexer.PUNCT and self.token.value == char

    def expect(self, char: str, what: str) -> None:
        if not self.is_punct(char):
            self.fail(f"expected {what} but found {_describe(self.token)}")
        self.pos += 1

    def commands(self, closing: bool) -> list[Command]:
        result = []
        while True:
            if self.token.kind == lexer.END:
                return result  # a block's caller reports the missing '}'

            if closing and self.is_punct("}"):
                return result
            start, depth = self.pos, self.depth
            try:
                result.append(self.command())
            except _Abandon:
                self.depth = depth
                self.recover(start)

    def recover(self, start: int) -> None:
        """Skip to after the ';' or block that ends the broken command."""
        self.pos = max(self.pos, start)
        depth = 0
        while self.token.kind != lexer.END:
            token = self.token
            if token.kind == lexer.PUNCT:
                if token.value == "{":
                    depth += 1
                elif token.value == "}":
                    if depth == 0:
                        if self.pos == start:  # a stray '}' at this level
                            self.pos += 1
                        return
                    depth -= 1
                    if depth == 0:
                        self.pos += 1
                        return
                elif token.value == ";" and depth == 0:
                    self.pos += 1
                    return
            self.pos += 1

    def command(self) -> Command:
        token = self.token
        if token.kind != lexer.IDENTIFIER:
            self.fail(f"expected a command but found {_describe(token)}")
        self.pos += 1
        args, tests, test_list = self.arguments()
        if self.is_punct(";"):
            self.pos += 1
            return Command(token.value, args, tests, None, token.line, token.column, test_list)
        if self.is_punct("{"):
            self.pos += 1
            self.depth += 1
            if self.depth > MAX_NESTING:
                self.fail(f"blocks nested deeper than {MAX_NESTING}")
            block = self.commands(closing=True)
            self.depth -= 1
            self.expect("}", "'}'")
            return Command(token.value, args, tests, block, token.line, token.column, test_list)
        self.fail(f"expected ';' or '{{' but found {_describe(self.token)}")
        raise AssertionError  # fail() raised

    def arguments(self) -> tuple[list[Argument], list[Test], bool]:
        args: list[Argument] = []
        while True:
            token = self.token
            if token.kind == lexer.STRING:
                self.pos += 1
                args.append(StringArg([token.value], False, token.line, token.column))
            elif token.kind == lexer.NUMBER:
                self.pos += 1
                args.append(NumberArg(token.value, token.line, token.column))
            elif token.kind == lexer.TAG:
                self.pos += 1
                args.append(TagArg(":" + token.value, token.line, token.column))
            elif self.is_punct("["):
                args.append(self.string_list())
            else:
                break
        if self.token.kind == lexer.IDENTIFIER:
            return args, [self.test()], False
        if self.is_punct("("):
            return args, self.test_list(), True
        return args, [], False

    def string_list(self) -> StringArg:
        start = self.token
        self.pos += 1
        values = []
        while True:
            if self.token.kind != lexer.STRING:
                self.fail(f"expected a string in the list but found {_describe(self.token)}")
            values.append(self.token.value)
            self.pos += 1
            if self.is_punct("]"):
                self.pos += 1
                return StringArg(values, True, start.line, start.column)
            self.expect(",", "',' or ']'")

    def test(self) -> Test:
        token = self.token
        if token.kind != lexer.IDENTIFIER:
            self.fail(f"expected a test but found {_describe(token)}")
        self.pos += 1
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(f"tests nested deeper than {MAX_NESTING}")
        args, tests, test_list = self.arguments()
        self.depth -= 1
        return Test(token.value, args, tests, token.line, token.column, test_list)

    def test_list(self) -> list[Test]:
        self.pos += 1
        tests = []
        while True:
            tests.append(self.test())
            if self.is_punct(")"):
                self.pos += 1
                return tests
            self.expect(",", "',' or ')'")


def _describe(token: Token) -> str:
    if token.kind == lexer.END:
        return "the end of the script"
    if token.kind == lexer.PUNCT:
        return f"'{token.value}'"
    if token.kind == lexer.STRING:
        return "a string"
    if token.kind == lexer.NUMBER:
        return f"number {token.value}"
    if token.kind == lexer.TAG:
        return f"tag :{token.value}"
    return f"identifier '{token.value}'"


def parse(text: str) -> tuple[list[Command], list[SieveError]]:
    """The commands of a script and the errors found (tokens' and grammar's)."""
    tokens, errors = lexer.tokenize(text)
    parser = _Parser(tokens, errors)
    commands = parser.commands(closing=False)
    errors.sort(key=lambda error: (error.line, error.column))
    return commands, errors

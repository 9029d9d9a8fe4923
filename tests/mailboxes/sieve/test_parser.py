"""The Sieve lexer, parser and checker: every error with its line and column, never an
exception (RFC 5228 8, 2.4.2.4, 3.2)."""

from __future__ import annotations

import pytest

from mailboxes import sieve
from mailboxes.sieve import lexer
from mailboxes.sieve.parser import parse


def errors(text: str) -> list[tuple[int, int, str]]:
    return [(e.line, e.column, e.message) for e in sieve.check(text)]


def first_string(text: str) -> list[str]:
    script = sieve.compile(text)
    command = script.commands[-1]
    return command.positional[-1].values


def test_valid_script_has_no_errors():
    text = (
        'require ["fileinto", "reject"];\r\n'
        "# a comment\r\n"
        "/* a bracket\r\n comment */\r\n"
        'if header :contains ["from", "to"] ["boss", "chief"] {\r\n'
        '    fileinto "Work"; stop;\r\n'
        '} elsif size :over 1M { reject "too big"; }\r\n'
        "else { keep; }\r\n"
    )
    assert errors(text) == []
    script = sieve.compile(text)
    assert [c.name for c in script.commands] == ["require", "if", "elsif", "else"]
    assert script.requires == {"fileinto", "reject"}


def test_numbers_with_quantifiers():
    tokens, problems = lexer.tokenize("1 2K 3M 4G 99999999999999999999")
    assert [t.value for t in tokens[:4]] == [1, 2048, 3 << 20, 4 << 30]
    assert problems[0].message.startswith("number") and problems[0].column == 12


def test_quoted_string_escapes():
    assert first_string(r'require "reject"; reject "a\"b\\c\d";') == ['a"b\\cd']


def test_bytes_must_be_utf8_and_errors_name_the_byte():
    script = 'require "fileinto";\r\nfileinto "Caf\u00e9 \u2615";\r\n'.encode()
    assert sieve.check(script) == []
    assert sieve.compile(script).commands[1].positional[0].values == ["Caf\u00e9 \u2615"]
    bad = b'keep;\r\nfileinto "\xc3\xa9\xff";'
    assert errors(bad) == [
        (2, 1, "command 'fileinto' needs require 'fileinto'"),
        (2, 12, "invalid UTF-8 at byte 19"),
    ]


def test_columns_count_characters_and_lines_end_in_lf_or_crlf():
    assert errors("keep;\r\n\t  foo;") == [(2, 4, "unknown command 'foo'")]
    assert errors("keep;\n\u00e9\u00e9") == [
        (2, 1, "unexpected character '\u00e9'"),
        (2, 2, "unexpected character '\u00e9'"),
    ]
    assert errors('require "reject"; reject "\u2615";  foo;') == [(1, 32, "unknown command 'foo'")]


def test_line_ends_in_strings_are_crlf():
    assert first_string('require "reject";\nreject "a\nb\r\nc";') == ["a\r\nb\r\nc"]


def test_comparator_names_ignore_case_and_numbers_are_64_bit():
    assert errors('if header :comparator "I;OCTET" "subject" "x" {}') == []
    assert errors("if size :over 18446744073709551615 {}") == []
    assert errors("if size :over 18446744073709551616 {}")[0][2].startswith("number")


def test_multiline_string_dot_stuffing():
    text = 'require "reject";\nreject text: # why\nline one\n..dotted\n.\n;\n'
    assert first_string(text) == ["line one\r\n.dotted\r\n"]


def test_encoded_characters_only_with_the_extension():
    text = r'require ["encoded-character", "reject"]; reject "${hex: 40 41}${unicode:263a}${hex:4}${HEX:42}${hex:zz}";'
    assert first_string(text) == ["@A\u263a\x04B${hex:zz}"]
    plain = r'require "reject"; reject "${hex:40}";'
    assert first_string(plain) == ["${hex:40}"]


def test_encoded_character_errors():
    assert errors(r'require ["encoded-character", "reject"]; reject "${unicode:D800}";') == [
        (1, 49, "'${unicode:D800}' names an invalid Unicode character")
    ]
    assert errors(r'require ["encoded-character", "reject"]; reject "${hex:ff}";')[0][2] == (
        "'${hex:ff}' is not valid UTF-8"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ('keep;\nfoo "x";', [(2, 1, "unknown command 'foo'")]),
        (
            "if true { keep; }\nelse keep;",
            [(2, 1, "command 'else' needs a block"), (2, 6, "command 'else' takes no test")],
        ),
        ("keep", [(1, 5, "expected ';' or '{' but found the end of the script")]),
        ('if header "a" "b" { keep; }', []),
        ('if header :is "a" { keep; }', [(1, 4, "'header' expects string list, string list")]),
        ("if true { keep;", [(1, 16, "expected '}' but found the end of the script")]),
        ('keep;\n  fileinto "x";', [(2, 3, "command 'fileinto' needs require 'fileinto'")]),
        ('require "nonesuch";', [(1, 9, "unknown extension 'nonesuch' in require")]),
        ('keep; require "fileinto";', [(1, 7, "require must come before any other command")]),
        ("else { keep; }", [(1, 1, "else must follow if or elsif")]),
        ("if keep { }", [(1, 4, "'keep' is a command, not a test")]),
        ("true;", [(1, 1, "'true' is a test, not a command")]),
        ('if header :foo "a" "b" {}', [(1, 11, "unknown tagged argument :foo for 'header'")]),
        ('if header :is :contains "a" "b" {}', [(1, 15, ":contains conflicts with :is")]),
        ("if size 10 {}", [(1, 4, "size needs :over or :under")]),
        ('if size :over "10" {}', [(1, 4, "'size' expects number")]),
        ("if allof true {}", [(1, 4, "test 'allof' needs a test list in parentheses")]),
        ("if (true, false) {}", [(1, 1, "command 'if' needs exactly one test")]),
        ("if true;", [(1, 1, "command 'if' needs a block")]),
        ("keep {}", [(1, 1, "command 'keep' takes no block")]),
        (
            'redirect "not an address";',
            [(1, 10, "redirect to an invalid address 'not an address'")],
        ),
        ('if header :comparator "i;foo" "a" "b" {}', [(1, 23, "unknown comparator 'i;foo'")]),
        (
            'if header :comparator "i;ascii-numeric" "a" "1" {}',
            [(1, 23, "comparator 'i;ascii-numeric' needs require 'comparator-i;ascii-numeric'")],
        ),
        ('if header :count "gt" "a" "1" {}', [(1, 11, ":count needs require 'relational'")]),
        (
            'if address "subject" "x" {}',
            [(1, 12, "header 'subject' holds no addresses (address test)")],
        ),
        ("/* open", [(1, 1, "unterminated bracket comment")]),
        (
            'keep;\n "open',
            [(2, 2, "unterminated string"), (2, 2, "expected a command but found a string")],
        ),
        ("keep; } keep;", [(1, 7, "expected a command but found '}'")]),
        ("keep; @", [(1, 7, "unexpected character '@'")]),
    ],
)
def test_errors_with_line_and_column(text, expected):
    assert errors(text) == expected


def test_several_errors_reported_at_once():
    found = errors('foo;\nbar;\nif header :is "a" {\n  baz;\n}\n')
    assert [(line, column) for line, column, _ in found] == [(1, 1), (2, 1), (3, 4), (4, 3)]


def test_compile_raises_with_all_errors():
    with pytest.raises(sieve.SieveSyntaxError) as raised:
        sieve.compile("foo; bar;")
    assert [e.message for e in raised.value.errors] == [
        "unknown command 'foo'",
        "unknown command 'bar'",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "(" * 10_000,
        "if " + "not " * 5_000 + "true {}",
        "if " + "anyof(" * 3_000 + "true" + ")" * 3_000 + " {}",
        "{" * 5_000,
        "}" * 100,
        "[" * 100,
        '"\\',
        "text:",
        "text:\n",
        ":",
        "\x00\xff\ud800",
        "require [",
        'require ["a",',
        "if header :is",
    ],
)
def test_never_raises(text):
    sieve.check(text)


def test_nesting_limit_is_an_error():
    found = errors("if true {" * 100 + "}" * 100)
    assert found and "nested deeper than" in found[0][2]


def test_capabilities_can_all_be_required():
    text = "require [" + ", ".join(f'"{name}"' for name in sieve.CAPABILITIES) + "];"
    assert errors(text) == []


def test_parse_keeps_tags_and_positions():
    commands, problems = parse('if header :is "Subject" ["a", "b"] { keep; }')
    assert problems == []
    test = commands[0].tests[0]
    assert (test.name, test.line, test.column) == ("header", 1, 4)
    assert test.args[1].values == ["Subject"] and test.args[2].values == ["a", "b"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('require "variables"; set "1a" "x";', "invalid variable name '1a'"),
        ('require "variables"; set :lower :upper "a" "x";', ":upper conflicts with :lower"),
        (
            'require "date"; if currentdate :zone "0100" "year" "1" {}',
            "invalid time zone '0100' (want +hhmm)",
        ),
        (
            'require "enotify"; notify "xmpp:a@b";',
            "unsupported notification method 'xmpp:a@b' (only mailto)",
        ),
        (
            'require "enotify"; notify :importance "4" "mailto:a@b";',
            ':importance must be "1", "2" or "3"',
        ),
        ('require "editheader"; addheader "bad name" "x";', "invalid header field name 'bad name'"),
        (
            'require "vacation"; vacation :seconds 5 "x";',
            ":seconds needs require 'vacation-seconds'",
        ),
        (
            'require "vacation"; vacation :from "nobody" "x";',
            "vacation :from is not a valid address: 'nobody'",
        ),
        (
            'require "regex"; if header :regex "a" "' + "x" * 1025 + '" {}',
            f"bad regular expression '{'x' * 1025}': longer than 1024 characters",
        ),
        (
            'require "regex"; if header :regex "a" "(" {}',
            "bad regular expression '(': missing ) at position 1",
        ),
        ('require "index"; if header :last "a" "b" {}', ":last needs :index"),
        (
            'require "regex"; if header :regex "a" "(?i)x" {}',
            "bad regular expression '(?i)x': '(?' is not POSIX extended syntax",
        ),
        (
            'require "date"; if currentdate :zone "+2500" "year" "1" {}',
            "invalid time zone '+2500' (want +hhmm)",
        ),
        (
            'require "imap4flags"; setflag "var" "\\\\Seen";',
            "setflag with a variable name needs require 'variables'",
        ),
        ('require "include"; include "../x";', "invalid script name '../x'"),
        ('require ["include", "variables"]; global "a-b";', "invalid global variable name 'a-b'"),
        ('require "envelope"; if envelope "cc" "x" {}', "unknown envelope part 'cc'"),
        (
            'require ["include", "variables"]; set "x" "1"; global "x";',
            "global 'x' comes after the script used it as local",
        ),
        (
            'require "enotify"; notify :options ["a"] "mailto:a@example.org";',
            "invalid notify option 'a' (want name=value)",
        ),
    ],
)
def test_extension_argument_checks(text, message):
    assert [e[2] for e in errors(text)] == [message]


def test_variables_defer_constant_checks_to_run_time():
    assert errors('require ["variables", "fileinto"]; set "a" "x"; redirect "${a}";') == []


def test_includes_checked_at_upload_when_a_loader_is_given():
    scripts = {
        ("personal", "ok"): 'require "fileinto"; fileinto "A";',
        ("personal", "broken"): "foo;",
        ("personal", "loop"): 'require "include"; include "loop2";',
        ("personal", "loop2"): 'require "include"; include "loop";',
        ("global", "common"): 'require "include"; include :personal "ok";',
    }

    def load(name, location):
        return scripts.get((location, name))

    text = 'require "include";\ninclude "ok"; include :global "common"; include :optional "none";\n'
    assert sieve.check(text, include=load) == []
    assert sieve.check('require "include";\n  include "none";', include=load) == [
        sieve.SieveError(2, 3, "included personal script 'none' does not exist")
    ]
    assert [e.message for e in sieve.check('require "include"; include "broken";', load)] == [
        "included personal script 'broken': line 1, column 1: unknown command 'foo'"
    ]
    assert [e.message for e in sieve.check('require "include"; include "loop";', load)] == [
        "included personal script 'loop': included personal script 'loop2': "
        "include loop: personal script 'loop' includes itself"
    ]
    assert sieve.check('require "include"; include "none";') == []  # no loader: run time

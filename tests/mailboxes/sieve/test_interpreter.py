"""Running scripts: script + message -> actions, for the core language and each extension."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from mailboxes import sieve
from mailboxes.sieve import (
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    Keep,
    Limits,
    Notify,
    Redirect,
    Reject,
    SieveContext,
    Vacation,
)

RAW = (
    b"Return-Path: <bob@remote.example>\r\n"
    b"Received: from mx.remote.example by mx.example.org; Sun, 29 Nov 2026 01:00:05 +0000\r\n"
    b"From: Bob Smith <bob+lists@Remote.Example>\r\n"
    b"To: alice@example.org, Carol <carol@example.net>\r\n"
    b"Cc: undisclosed-recipients:;\r\n"
    b"Subject: [acme-users] [fwd] version 1.0 is out\r\n"
    b"X-Folded: one\r\n two\r\n"
    b"X-Encoded: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Date: Sun, 29 Nov 2026 02:30:00 +0100\r\n"
    b"Message-ID: <m1@remote.example>\r\n"
    b"\r\n"
    b"Hello Alice,\r\nthe release is out.\r\n"
)

MIME = (
    b"From: bob@remote.example\r\n"
    b"Subject: parts\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=FC=DFe aus K=F6ln\r\n"
    b"--b\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>Secret <b>word</b></p>\r\n"
    b"--b\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"YmluYXJ5IHBheWxvYWQ=\r\n"
    b"--b--\r\n"
)


def run(text: str, raw: bytes = RAW, **context) -> sieve.SieveResult:
    context.setdefault("envelope_from", "bob@remote.example")
    context.setdefault("envelope_to", "alice+work@example.org")
    return sieve.run(sieve.compile(text), SieveContext(raw=raw, **context))


def actions(text: str, raw: bytes = RAW, **context) -> list:
    result = run(text, raw, **context)
    assert result.errors == []
    return result.actions


def matches(test: str, require: str = "", raw: bytes = RAW, **context) -> bool:
    """Whether `test` is true for the message."""
    text = f"require [{require}];\n" if require else ""
    return actions(text + f"if {test} {{ discard; }}", raw, **context) == [Discard()]


# -- RFC 5228 core --------------------------------------------------------------------------


def test_empty_script_keeps_implicitly():
    result = run("")
    assert (result.actions, result.implicit_keep, result.errors) == ([], True, [])


def test_if_elsif_else_takes_one_branch():
    text = (
        'require "fileinto";\n'
        'if header :is "subject" "nope" { fileinto "A"; }\n'
        'elsif header :contains "subject" "version" { fileinto "B"; }\n'
        'elsif true { fileinto "C"; }\n'
        'else { fileinto "D"; }\n'
        'if false { fileinto "E"; } else { fileinto "F"; }'
    )
    result = run(text)
    assert result.actions == [FileInto("B"), FileInto("F")]
    assert result.implicit_keep is False


def test_stop_ends_the_script():
    assert actions("keep; stop; discard;") == [Keep()]


def test_keep_discard_and_implicit_keep():
    assert run("discard;").implicit_keep is False
    result = run("keep; discard;")
    assert result.actions == [Keep(), Discard()] and result.implicit_keep is False


@pytest.mark.parametrize(
    "test, expected",
    [
        ('header :is "subject" "[acme-users] [fwd] version 1.0 is out"', True),
        ('header :is "SUBJECT" "[ACME-users] [fwd] VERSION 1.0 is out"', True),
        (
            'header :comparator "i;octet" :is "subject" "[ACME-users] [fwd] version 1.0 is out"',
            False,
        ),
        ('header :contains "x-folded" "one two"', True),  # unfolded
        ('header :is "x-encoded" "café"', True),  # RFC 2047 decoded
        ('header :matches "subject" "*1.?*"', True),
        ('header :matches "subject" "acme*"', False),
        ('header :contains ["nope", "to"] "carol"', True),
        ('header :contains "nonexistent" ""', False),
        ('address :is "from" "bob+lists@remote.example"', True),
        ('address :localpart :is "from" "bob+lists"', True),
        ('address :domain :is "to" "example.net"', True),
        ('address :all :is ["to", "cc"] "carol@example.net"', True),
        ('address :domain :matches "cc" "?*"', False),  # a group name has no domain
        ('address :all :is "cc" "undisclosed-recipients:;"', True),  # an empty group, as text
        ('address :localpart :matches "cc" "*"', False),  # ... with no local part
        ('envelope :is "from" "bob@remote.example"', True),
        ('envelope :domain :is "to" "EXAMPLE.ORG"', True),
        ('exists ["from", "date"]', True),
        ('exists ["from", "x-nope"]', False),
        ("size :over 100", True),
        ("size :under 100", False),
        (f"size :under {len(RAW)}", False),
        (f"size :over {len(RAW) - 1}", True),
        ('allof (true, header :contains "subject" "acme")', True),
        ("allof (true, false)", False),
        ("anyof (false, true)", True),
        ("not anyof (false, false)", True),
    ],
)
def test_core_tests(test, expected):
    assert matches(test, '"envelope"') is expected


def test_null_envelope_sender_is_empty():
    assert matches('envelope :is "from" ""', '"envelope"', envelope_from="")
    assert matches('envelope :all :is "from" ""', '"envelope"', envelope_from="<>")


def test_duplicate_actions_are_one():
    text = (
        'require ["fileinto", "copy"];\n'
        'fileinto "A"; fileinto "A"; keep; keep; redirect "x@example.net";'
        'redirect "x@EXAMPLE.net"; redirect "X@example.net"; fileinto :copy "B"; discard; discard;'
    )
    assert actions(text) == [
        FileInto("A"),
        Keep(),
        Redirect("x@example.net"),
        Redirect("X@example.net"),  # local parts are case-sensitive
        FileInto("B", copy=True),
        Discard(),
    ]


def test_copy_keeps_the_implicit_keep():
    result = run(
        'require ["copy", "fileinto"]; redirect :copy "x@example.net"; fileinto :copy "A";'
    )
    assert result.implicit_keep is True
    assert result.actions == [Redirect("x@example.net", copy=True), FileInto("A", copy=True)]


# -- run-time limits and errors -------------------------------------------------------------


def test_too_many_redirects_fails_with_implicit_keep():
    text = "".join(f'redirect "u{i}@example.net";' for i in range(5))
    result = run(text)
    assert result.actions == [] and result.implicit_keep is True
    assert result.errors[0].message == "more than 4 redirects"
    assert (result.errors[0].line, result.errors[0].column) == (
        1,
        1 + 4 * len('redirect "u0@example.net";'),
    )
    assert run(text, limits=Limits(max_redirects=5)).errors == []


def test_too_many_actions():
    text = 'require "fileinto";' + "".join(f'fileinto "f{i}";' for i in range(40))
    assert run(text).errors[0].message == "more than 32 actions"


def test_step_budget():
    text = 'require "variables";' + 'if header :contains "subject" "x" { keep; }\n' * 300
    result = run(text, limits=Limits(max_steps=100))
    assert result.errors[0].message == "the script ran more than 100 steps"
    assert result.implicit_keep is True and result.actions == []


def test_reject_conflicts():
    result = run('require ["reject", "fileinto"]; fileinto "A"; reject "no";')
    assert result.errors[0].message == "reject conflicts with an earlier fileinto"
    assert result.actions == [] and result.implicit_keep
    result = run('require ["reject"]; reject "no"; keep;')
    assert result.errors[0].message == "keep conflicts with reject"
    result = run('require ["reject"]; reject "no"; discard;')
    assert result.actions == [Reject("no"), Discard()] and not result.implicit_keep


def test_ereject():
    assert actions('require "ereject"; ereject "go away";') == [Reject("go away", extended=True)]


def test_redirect_to_bad_address_at_run_time():
    result = run('require "variables"; set "a" "no address"; redirect "${a}";')
    assert result.errors[0].message == "redirect to an invalid address 'no address'"
    assert (result.errors[0].line, result.errors[0].column) == (1, 44)


# -- imap4flags (RFC 5232) ------------------------------------------------------------------


def test_flags_internal_variable():
    text = (
        'require ["imap4flags", "fileinto"];\n'
        'setflag "\\\\Seen \\\\Flagged";\n'
        'addflag ["$Work", "\\\\seen"];\n'
        'removeflag "\\\\Flagged";\n'
        'if hasflag :contains "$work" { fileinto "W"; }\n'
        'fileinto :flags "\\\\Answered" "X";\n'
        "keep;"
    )
    result = run(text)
    assert result.actions == [
        FileInto("W", flags=("\\Seen", "$Work")),
        FileInto("X", flags=("\\Answered",)),
        Keep(flags=("\\Seen", "$Work")),
    ]


def test_flags_in_variables_and_implicit_keep():
    text = (
        'require ["imap4flags", "variables"];\n'
        'addflag "mine" ["a", "b"]; removeflag "mine" "A";\n'
        'if hasflag "mine" "b" { addflag "\\\\Flagged"; }\n'
        'if string :is "${mine}" "b" { addflag "ok"; }'
    )
    result = run(text)
    assert result.actions == [] and result.implicit_keep_flags == ("\\Flagged", "ok")


# -- variables (RFC 5229) -------------------------------------------------------------------


def test_match_variables_from_matches():
    text = (
        'require ["variables", "fileinto"];\n'
        'if header :matches "subject" "[*] *" { fileinto "lists.${1}"; set "rest" "${2}"; }\n'
        'if string :is "${rest}" "[fwd] version 1.0 is out" { fileinto "ok"; }\n'
        'if header :matches "nope" "*" { fileinto "never"; }\n'
        'fileinto "still ${1}";'
    )
    assert actions(text) == [
        FileInto("lists.acme-users"),
        FileInto("ok"),
        FileInto("still acme-users"),
    ]


@pytest.mark.parametrize(
    "modifiers, value, expected",
    [
        (":lower", "HeLLo", "hello"),
        (":upper", "HeLLo", "HELLO"),
        (":lowerfirst", "HeLLo", "heLLo"),
        (":upperfirst :lower", "hELLO", "Hello"),
        (":length", "héllo", "5"),
        (":quotewildcard", "a*b?c\\\\", "a\\\\*b\\\\?c\\\\\\\\"),
        (":length :upper", "abc", "3"),
    ],
)
def test_set_modifiers(modifiers, value, expected):
    text = f'require ["variables", "reject"]; set {modifiers} "v" "{value}"; reject "${{v}}";'
    expected_value = expected.replace("\\\\", "\\")
    assert actions(text) == [Reject(expected_value)]


def test_unknown_variable_is_empty_and_names_ignore_case():
    text = 'require ["variables", "reject"]; set "Name" "x"; reject "[${name}][${other}][${3}]";'
    assert actions(text) == [Reject("[x][][]")]


def test_string_test_count_skips_empty():
    text = (
        'require ["variables", "relational", "comparator-i;ascii-numeric"];'
        'set "a" "x"; if string :count "eq" :comparator "i;ascii-numeric" ["${a}", "", "y"] "2" '
        "{ discard; }"
    )
    assert actions(text) == [Discard()]


# -- relational (RFC 5231) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "test, expected",
    [
        ('header :count "eq" :comparator "i;ascii-numeric" "to" "1"', True),
        ('address :count "eq" :comparator "i;ascii-numeric" "to" "2"', True),
        ('header :value "gt" :comparator "i;ascii-numeric" "x-num" "9"', True),
        ('header :value "lt" :comparator "i;ascii-numeric" "x-num" "9"', False),
        ('header :value "gt" "x-num" "9"', False),  # as strings, "10" < "9"
        ('header :value "ge" :comparator "i;ascii-numeric" "x-text" "99999"', True),  # infinity
        ('header :value "eq" :comparator "i;ascii-numeric" "x-text" "abc"', True),
        ('header :count "ne" :comparator "i;ascii-numeric" "x-none" "0"', False),
    ],
)
def test_relational(test, expected):
    raw = b"To: a@x, b@y\r\nX-Num: 10\r\nX-Text: abc\r\n\r\n"
    assert matches(test, '"relational", "comparator-i;ascii-numeric"', raw) is expected


# -- subaddress (RFC 5233) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "test, expected",
    [
        ('address :user "from" "bob"', True),
        ('address :detail "from" "lists"', True),
        ('envelope :detail "to" "work"', True),
        ('envelope :user "to" "alice"', True),
        ('address :detail :matches "to" "*"', False),  # no separator: no detail
    ],
)
def test_subaddress(test, expected):
    assert matches(test, '"subaddress", "envelope"') is expected


# -- body (RFC 5173) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "test, expected",
    [
        ('body :contains "Grüße aus Köln"', True),  # decoded from quoted-printable latin-1
        ('body :text :contains "secret word"', True),  # html without its tags
        ('body :raw :contains "Gr=FC=DFe"', True),
        ('body :raw :contains "Grüße"', False),
        ('body :content "application" :contains "binary payload"', True),
        ('body :content "text/html" :contains "<b>word</b>"', True),
        ('body :content "text/plain" :contains "Secret"', False),
        ('body :contains "binary payload"', False),
    ],
)
def test_body(test, expected):
    assert matches(test, '"body"', MIME) is expected


# -- vacation (RFC 5230, RFC 6131) ----------------------------------------------------------


def test_vacation_action():
    text = (
        'require ["vacation", "vacation-seconds"];\n'
        'vacation :seconds 3600 :subject "Away" :from "alice@example.org" '
        ':addresses ["alias@example.org"] :handle "h1" "I am away.";'
    )
    assert actions(text) == [
        Vacation(
            reason="I am away.",
            subject="Away",
            from_address="alice@example.org",
            addresses=("alias@example.org",),
            handle="h1",
            seconds=3600,
        )
    ]


def test_vacation_default_days_and_handle():
    (action,) = actions('require "vacation"; vacation :days 3 text:\r\nAway\r\n.\r\n;')
    assert (action.reason, action.days, action.seconds) == ("Away\r\n", 3, 3 * 86400)
    (same,) = actions('require "vacation"; vacation :days 5 text:\r\nAway\r\n.\r\n;')
    assert action.handle == same.handle  # the reason makes the handle, not the period
    (other,) = actions('require "vacation"; vacation "Back soon";')
    assert other.handle != action.handle and other.days == 7


def test_vacation_twice_is_an_error():
    result = run('require "vacation"; vacation "a"; vacation "b";')
    assert result.errors and result.actions == []


# -- date and index (RFC 5260) --------------------------------------------------------------

NOW = datetime(2026, 12, 3, 23, 30, 15, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize(
    "test, expected",
    [
        ('date :originalzone "date" "date" "2026-11-29"', True),
        ('date :originalzone "date" "hour" "02"', True),
        ('date :zone "+0000" "date" "hour" "01"', True),
        ('date :zone "-0500" "date" "date" "2026-11-28"', True),
        ('date "date" "zone" "-0500"', True),  # the local zone is the zone of `now`
        ('date :originalzone "date" "zone" "+0100"', True),
        ('date :originalzone "date" "weekday" "0"', True),
        ('date :originalzone "date" "julian" "61373"', True),
        ('date :originalzone "date" "iso8601" "2026-11-29T02:30:00+01:00"', True),
        ('date :originalzone "date" "std11" "Sun, 29 Nov 2026 02:30:00 +0100"', True),
        ('date :originalzone "date" "time" "02:30:00"', True),
        ('date :zone "+0000" "received" "minute" "00"', True),
        ('date "x-nope" "year" "2026"', False),
        ('currentdate "date" "2026-12-03"', True),
        ('currentdate :zone "+0000" "date" "2026-12-04"', True),
        ('currentdate :zone "+0000" "time" "04:30:15"', True),
        ('currentdate :value "ge" "year" "2026"', True),
        ('header :index 2 "to" "b@y"', True),
        ('header :index 1 :last "to" "b@y"', True),
        ('header :index 3 "to" "b@y"', False),
        ('address :index 1 "to" "a@x"', True),
    ],
)
def test_date_and_index(test, expected):
    raw = RAW.replace(
        b"To: alice@example.org, Carol <carol@example.net>\r\n", b"To: a@x\r\nTo: b@y\r\n"
    )
    assert matches(test, '"date", "index", "relational"', raw, now=NOW) is expected


# -- regex (draft-ietf-sieve-regex) ---------------------------------------------------------


def test_regex_and_match_variables():
    text = (
        'require ["regex", "variables", "fileinto"];\n'
        'if header :regex "subject" "^\\\\[([a-z-]+)\\\\] .* ([0-9]+\\\\.[0-9]+)" '
        '{ fileinto "${1}/${2}"; }\n'
        'if header :regex "from" "[[:digit:]]" { discard; }\n'
        'if header :regex :comparator "i;octet" "subject" "VERSION" { discard; }'
    )
    assert actions(text) == [FileInto("acme-users/1.0")]


def test_catastrophic_regex_ends_in_a_run_time_error_not_a_stuck_delivery():
    text = (
        'require ["regex", "variables"];\n'
        'set "p" "(a|aa)+$"; if string :regex "${s}" "${p}" { discard; }'
    )
    text = text.replace("${s}", "a" * 80 + "!")
    started = time.process_time()
    result = run(text)
    assert time.process_time() - started < 1.0
    assert result.errors[0].message == "regular expression '(a|aa)+$' took longer than 0.05 s"
    assert result.actions == [] and result.implicit_keep
    # the same shape of pattern is fine where it cannot backtrack
    assert matches('header :regex "from" "([a-z]+\\\\.)+example"', '"regex"')


def test_regex_posix_classes_and_longest_match():
    text = (
        'require ["regex", "variables", "reject"];\n'
        'if string :regex "ab12cd" "[[:digit:]]+" { set "d" "${0}"; }\n'
        'if string :regex "ab" "a|ab" { reject "${d} ${0}"; }'
    )
    assert actions(text) == [Reject("12 ab")]


# -- include (RFC 6609) ---------------------------------------------------------------------


def test_include_return_and_globals():
    scripts = {
        ("lists", True): 'require ["include", "variables", "fileinto"];\n'
        'global "folder"; if header :contains "subject" "acme" { set "folder" "Lists"; return; }\n'
        'set "folder" "never";',
        ("common", False): 'require ["fileinto", "include", "variables"]; global "folder";'
        'fileinto "${folder}";',
    }
    text = (
        'require ["include", "variables"];\n'
        'global "folder";\n'
        'include :personal "lists";\n'
        'include :global "common";\n'
        'include :global :once "common";\n'
        'include :optional "missing";'
    )
    result = run(text, include=lambda name, personal: scripts.get((name, personal == "personal")))
    assert result.errors == [] and result.actions == [FileInto("Lists")]


def test_include_loop_and_missing_are_run_time_errors():
    loop = run(
        'require "include"; include "me";',
        include=lambda name, personal: 'require "include"; include "me";',
    )
    assert "include loop" in loop.errors[0].message and loop.implicit_keep
    missing = run('require "include"; include "none";', include=lambda name, personal: None)
    assert missing.errors[0].message == "included personal script 'none' does not exist"
    broken = run('require "include"; include "bad";', include=lambda name, personal: "foo;")
    assert "unknown command 'foo'" in broken.errors[0].message


def test_stop_in_include_stops_everything():
    result = run(
        'require "include"; include "s"; discard;',
        include=lambda name, personal: "keep; stop;",
    )
    assert result.actions == [Keep()]


# -- mailbox, mailboxid (RFC 5490, RFC 9042) ------------------------------------------------


def test_mailbox_and_mailboxid():
    text = (
        'require ["mailbox", "mailboxid", "fileinto"];\n'
        'if mailboxexists ["INBOX", "Work"] { fileinto :create "Work"; }\n'
        'if mailboxexists "Nope" { discard; }\n'
        'if mailboxidexists "F123" { fileinto :mailboxid "F123" "Other"; }'
    )
    result = run(
        text,
        mailbox_exists=lambda name: name in ("INBOX", "Work"),
        mailboxid_exists=lambda mid: mid == "F123",
    )
    assert result.actions == [FileInto("Work", create=True), FileInto("Other", mailboxid="F123")]


# -- duplicate (RFC 7352) -------------------------------------------------------------------


def test_duplicate_uses_the_callback():
    seen: dict[str, int] = {}

    def duplicate(key: str, seconds: int) -> bool:
        found = key in seen
        seen[key] = seconds
        return found

    text = 'require "duplicate"; if duplicate :seconds 60 { discard; }'
    assert actions(text, duplicate=duplicate) == []
    assert actions(text, duplicate=duplicate) == [Discard()]
    assert list(seen.values()) == [60]
    other = 'require "duplicate"; if duplicate :handle "x" :uniqueid "abc" { discard; }'
    assert actions(other, duplicate=duplicate) == []
    no_id = b"Subject: x\r\n\r\n"
    assert (
        actions('require "duplicate"; if duplicate { discard; }', no_id, duplicate=duplicate) == []
    )


# -- editheader (RFC 5293) ------------------------------------------------------------------


def test_editheader_changes_what_later_tests_see():
    text = (
        'require ["editheader"];\n'
        'addheader "X-Sieve" "one";\n'
        'addheader :last "X-Sieve" "two";\n'
        'deleteheader :index 1 "To";\n'
        'deleteheader "received";\n'
        'addheader "Received" "forged";\n'
        'deleteheader :matches "X-Folded" "one*";\n'
        'if header :is "x-sieve" "two" { if not exists "x-folded" { discard; } }'
    )
    result = run(text)
    assert result.actions == [Discard()]
    assert list(result.header_edits) == [
        AddHeader("X-Sieve", "one"),
        AddHeader("X-Sieve", "two", last=True),
        DeleteHeader("To", (1,)),
        DeleteHeader("X-Folded", (1,)),
    ]
    edited = result.header_edits.apply(RAW)
    assert edited.startswith(b"X-Sieve: one\r\nReturn-Path:")
    assert b"\r\nTo:" not in edited and b"X-Folded" not in edited and b"Received: from mx" in edited
    assert edited.endswith(
        b"Message-ID: <m1@remote.example>\r\nX-Sieve: two\r\n\r\nHello Alice,\r\nthe release is out.\r\n"
    )


# -- enotify (RFC 5435, 5436) ---------------------------------------------------------------


def test_notify():
    text = (
        'require ["enotify", "variables"];\n'
        'if valid_notify_method "mailto:alice@example.org" {\n'
        '  notify :importance "1" :message "New: ${subject}" "mailto:alice@example.org"; }\n'
        'if valid_notify_method "xmpp:alice@example.org" { discard; }\n'
        'if notify_method_capability "mailto:a@example.org" "online" "maybe" { keep; }\n'
        'set :encodeurl "q" "a b&c"; notify "mailto:x@example.org?subject=${q}";'
    )
    assert actions(text) == [
        Notify("mailto:alice@example.org", importance="1", message="New: "),
        Keep(),
        Notify("mailto:x@example.org?subject=a%20b%26c"),
    ]


# -- spamtest, virustest (RFC 5235) ---------------------------------------------------------


@pytest.mark.parametrize(
    "test, score, expected",
    [
        ('spamtest :value "ge" :comparator "i;ascii-numeric" "6"', 6.0, True),
        ('spamtest :value "ge" :comparator "i;ascii-numeric" "6"', 4.0, False),
        ('spamtest :is "0"', None, True),
        ('spamtest :is "10"', 25.0, True),
        ('spamtest :is "1"', -3.0, True),
        ('spamtest :percent :value "gt" :comparator "i;ascii-numeric" "49"', 5.0, True),
        ('virustest :is "0"', None, True),
    ],
)
def test_spamtest(test, score, expected):
    require = '"spamtestplus", "virustest", "relational", "comparator-i;ascii-numeric"'
    assert matches(test, require, spam_score=score) is expected


def test_virustest_score():
    assert matches(
        'virustest :value "ge" :comparator "i;ascii-numeric" "4"',
        '"virustest", "relational", "comparator-i;ascii-numeric"',
        virus_score=5,
    )


# -- encoded-character at run time ------------------------------------------------------------


def test_encoded_character_in_a_test():
    assert matches('header :contains "subject" "${hex:31 2e 30}"', '"encoded-character"')


# -- environment (RFC 5183), ihave (RFC 5463) -------------------------------------------------


def test_environment():
    require = '"environment"'
    assert matches('environment :is "name" "Mailhost"', require)
    assert matches(
        'environment :is "remote-ip" "192.0.2.1"', require, environment={"remote-ip": "192.0.2.1"}
    )
    assert not matches('environment :matches "domain" "*"', require)


def test_ihave_guards_unknown_extensions():
    text = (
        'require ["ihave", "fileinto"];\n'
        'if ihave "fileinto" { fileinto "A"; }\n'
        'if ihave "x-unknown" { x_unknown :weird "args"; }\n'
        'if ihave "vacation" { vacation "away"; }\n'
    )
    assert sieve.check(text) == []
    assert actions(text) == [
        FileInto("A"),
        Vacation(reason="away", handle=actions(text)[1].handle, days=7),
    ]
    failed = run('require "ihave"; error "stop here";')
    assert failed.errors[0].message == "stop here" and failed.implicit_keep


def test_duplicate_store_takes_the_last_flags():
    text = (
        'require ["imap4flags", "fileinto"];\n'
        'fileinto :flags "a" "A"; fileinto :flags "b" "A"; keep :flags "c"; keep :flags "d";'
    )
    assert actions(text) == [FileInto("A", flags=("b",)), Keep(flags=("d",))]


# -- special-use (RFC 8579) -------------------------------------------------------------------


def test_special_use():
    uses = {"Spam": "\\Junk", "Sent": "\\Sent"}

    def specialuse_exists(mailbox, attribute):
        if mailbox is None:
            return attribute in uses.values()
        return uses.get(mailbox) == attribute

    text = (
        'require ["special-use", "fileinto", "mailbox"];\n'
        'if specialuse_exists "\\\\Junk" { fileinto :specialuse "\\\\Junk" "Junk"; }\n'
        'if specialuse_exists "Spam" ["\\\\Junk", "\\\\Sent"] { discard; }\n'
        'if specialuse_exists "Sent" "\\\\Sent" { fileinto :specialuse "\\\\Archive" :create "Archive"; }'
    )
    assert actions(text, specialuse_exists=specialuse_exists, mailbox_exists=uses.__contains__) == [
        FileInto("Junk", specialuse="\\Junk"),
        FileInto("Archive", specialuse="\\Archive", create=True),
    ]
    assert [
        e.message
        for e in sieve.check(
            'require ["special-use", "fileinto"]; fileinto :specialuse "Junk" "J";'
        )
    ] == ["invalid special-use attribute 'Junk'"]


def test_variables_are_capped_so_doubling_cannot_exhaust_memory():
    text = (
        'require ["variables", "reject"]; set "a" "0123456789abcdef";'
        + ('set "a" "${a}${a}";' * 40)
        + 'if header :matches "subject" "*" { set "s" "${1}"; } reject "${a}";'
    )
    (action,) = actions(text)
    assert len(action.reason) == 4096


def test_cpu_budget():
    text = 'if header :contains "subject" "x" { keep; }\n' * 200
    result = run(text, limits=Limits(cpu_seconds=0.0))
    assert result.errors[0].message == "the script used more than 0.0 s of CPU"
    assert result.implicit_keep is True and result.actions == []


def test_deleting_twenty_thousand_fields_is_linear():
    raw = b"Subject: x\r\n" + b"X-Many: y\r\n" * 20_000 + b"\r\nbody"
    started = time.process_time()
    result = run('require "editheader"; deleteheader "x-many";', raw)
    assert result.header_edits.apply(raw) == b"Subject: x\r\n\r\nbody"
    assert time.process_time() - started < 1.0


def test_a_message_nested_past_the_recursion_limit_is_kept():
    raw = b"From: a@b\r\nMIME-Version: 1.0\r\n" + _nested(2000)
    result = run('require "body"; if body :contains "needle" { discard; }', raw)
    assert result.actions == [] and result.implicit_keep is True
    assert result.errors[0].message == "the script or the message nests too deeply"


def _nested(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nneedle\r\n"
    for i in range(depth):
        b = f"b{i}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n"
            + body + b"\r\n--" + b + b"--\r\n"
        )  # fmt: skip
    return body


def test_zone_out_of_range_from_a_variable_is_a_run_time_error():
    text = 'require ["date", "variables"]; set "z" "+2500"; if currentdate :zone "${z}" "year" "2026" { discard; }'
    result = run(text, now=NOW)
    assert result.errors[0].message == "invalid time zone '+2500'" and result.implicit_keep


def test_envelope_auth_and_mailto_scheme_case():
    text = 'require "envelope"; if envelope :is "auth" "alice@example.org" { discard; }'
    assert actions(text, envelope_auth="alice@example.org") == [Discard()]
    assert actions(text) == []
    assert actions('require "enotify"; notify "MAILTO:a@example.org";') == [
        Notify("mailto:a@example.org")
    ]

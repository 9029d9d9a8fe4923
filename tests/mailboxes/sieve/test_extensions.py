"""Transcripts for every Sieve extension issue 17 names: script + message -> the exact actions,
through mailboxes.sieve.run with a SieveContext (the MDA's side is in the delivery tests).

Each test names its RFC section where the expected value comes from; the differential test
(test_pigeonhole_differential.py) covers the same ground against Pigeonhole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

sieve = pytest.importorskip("mailboxes.sieve")
if not hasattr(sieve, "run"):
    pytest.skip("mailboxes.sieve has no run() yet", allow_module_level=True)

from mailboxes.sieve.actions import (  # noqa: E402
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    Keep,
    Limits,
    Notify,
    Redirect,
    Reject,
    Vacation,
)


def message(*headers: str, body: str = "Hello Alice,\r\nsee you tomorrow.\r\n") -> bytes:
    default = {
        "from": "From: Bob <bob@remote.example>",
        "to": "To: Alice <alice@example.org>",
        "subject": "Subject: Lunch tomorrow",
        "date": "Date: Sat, 28 Nov 2026 14:05:01 +0100",
        "message-id": "Message-ID: <lunch-1@remote.example>",
    }
    given = {h.split(":", 1)[0].lower() for h in headers}
    lines = [h for name, h in default.items() if name not in given] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


PLAIN = message()


def run(script: str, raw: bytes = PLAIN, **context):
    errors = sieve.check(script)
    assert errors == [], errors
    context.setdefault("envelope_from", "bob@remote.example")
    context.setdefault("envelope_to", "alice@example.org")
    result = sieve.run(sieve.compile(script), sieve.SieveContext(raw=raw, **context))
    assert result.errors == [], result.errors
    return result


def failed(script: str, raw: bytes = PLAIN, **context):
    """A run-time error: no action but the implicit keep (RFC 5228 2.10.6), and the reason."""
    context.setdefault("envelope_from", "bob@remote.example")
    context.setdefault("envelope_to", "alice@example.org")
    result = sieve.run(sieve.compile(script), sieve.SieveContext(raw=raw, **context))
    assert result.errors
    assert result.actions == []
    assert result.implicit_keep
    return result


def actions(script: str, raw: bytes = PLAIN, **context) -> list:
    return run(script, raw, **context).actions


def folders(script: str, raw: bytes = PLAIN, **context) -> list[str]:
    return [a.mailbox for a in actions(script, raw, **context)]


def assert_compile_error(script: str, line: int) -> None:
    errors = sieve.check(script)
    assert errors, script
    assert errors[0].line == line, errors
    with pytest.raises(sieve.SieveSyntaxError):
        sieve.compile(script)


# --- RFC 5228 core -------------------------------------------------------------------------


def test_core_implicit_keep_only():
    result = run("# nothing\n")
    assert result.actions == []
    assert result.implicit_keep
    assert result.implicit_keep_flags == ()


def test_core_keep_discard_stop():
    result = run("keep; stop; discard;")
    assert result.actions == [Keep()]
    assert not result.implicit_keep
    result = run("discard;")
    assert result.actions == [Discard()]
    assert not result.implicit_keep


def test_core_redirect_takes_a_name_and_address():
    # RFC 5228 2.4.2.3: sieve-address = addr-spec / phrase "<" addr-spec ">".
    script = 'redirect "Alice Forward <alice@forward.example>";'
    assert actions(script) == [Redirect("alice@forward.example")]
    assert sieve.check('redirect "Alice Forward";')
    # White space around the parts (RFC 5322 CFWS) and needless quotes go.
    script = 'redirect "  Bob  < bob @ forward.example > "; redirect "\\"Sirius\\"@x.example";'
    assert actions(script) == [Redirect("bob@forward.example"), Redirect("Sirius@x.example")]
    assert actions('redirect "\\"S[r]us\\"@x.example";') == [Redirect('"S[r]us"@x.example')]
    assert actions('redirect "a..b.@x.example";') == [Redirect('"a..b."@x.example')]


def test_core_redirect_cancels_implicit_keep():
    result = run('redirect "alice@forward.example";')
    assert result.actions == [Redirect("alice@forward.example")]
    assert not result.implicit_keep


def test_core_if_elsif_else():
    script = """if header :contains "subject" "dinner" { redirect "a@x.example"; }
                elsif header :is "subject" "LUNCH TOMORROW" { redirect "b@x.example"; }
                else { redirect "c@x.example"; }"""
    assert actions(script) == [Redirect("b@x.example")]


def test_core_address_parts_and_size():
    script = """
    if address :is :localpart "from" "bob" { redirect "local@x.example"; }
    if address :is :domain "from" "REMOTE.EXAMPLE" { redirect "domain@x.example"; }
    if size :over 1M { redirect "big@x.example"; }
    if size :under 1K { redirect "small@x.example"; }
    """
    assert [a.address for a in actions(script)] == [
        "local@x.example",
        "domain@x.example",
        "small@x.example",
    ]


def test_core_address_quoted_local_part():
    raw = message('From: "Doe, John" <"john doe"@quoted.example>')
    script = """
    if address :is :localpart "from" "john doe" { redirect "local@x.example"; }
    if address :is :all "from" "\\"john doe\\"@quoted.example" { redirect "all@x.example"; }
    """
    assert [a.address for a in actions(script, raw)] == ["local@x.example", "all@x.example"]


def test_core_address_groups_and_invalid_addresses():
    # A group's members are addresses, its name is not (RFC 5322 3.4); an entry without a
    # domain, an empty group or "<>" match only as text with :all (RFC 5228 2.7.4).
    raw = message(
        "To: Friends: a@x.example, b@y.example;, c@z.example",
        "Cc: undisclosed-recipients:;",
        "Bcc: bare-local",
        "Reply-To: <>",
    )
    script = """require ["variables", "fileinto"];
    if address :all :is "to" "Friends" { fileinto "group-name"; }
    if address :all :is "to" "b@y.example" { fileinto "member"; }
    if address :all :is "cc" "undisclosed-recipients:;" { fileinto "empty-group-text"; }
    if address :localpart :matches ["cc", "bcc", "reply-to"] "*" { fileinto "wrong-local"; }
    if address :domain :matches ["cc", "bcc", "reply-to"] "*" { fileinto "wrong-domain"; }
    if address :all :is "bcc" "bare-local" { fileinto "bare-text"; }
    if address :all :is "reply-to" "<>" { fileinto "null-text"; }"""
    assert folders(script, raw) == ["member", "empty-group-text", "bare-text", "null-text"]


def test_core_compile_errors_report_line():
    assert_compile_error('keep;\nfileinto "x";\n', 2)
    assert_compile_error("keep;\n\nif true { keep;\n", 4)  # where the script ends
    assert_compile_error('require "no-such-extension";', 1)


@pytest.mark.parametrize(
    "script",
    [
        'require "fileinto";\nfileinto :copy "x";',  # copy not required
        'require "vacation";\nvacation :days "three" "x";',
        'require "imap4flags";\nsetflag;',
        'require "relational";\nif header :value "bigger" "a" "b" { keep; }',
        'require "date";\nif date :zone "0100" "date" "year" "1" { keep; }',
        'require "index";\nif header :last "a" "b" { keep; }',
        'require "duplicate";\nif duplicate :header "a" :uniqueid "b" { keep; }',
        'require "editheader";\naddheader "Bad Name" "x";',
        'require "enotify";\nnotify "nosuchscheme:x";',
        'require "variables";\nset "1" "x";',
        'require "include";\ninclude "../etc/passwd";',
        'require "spamtest";\nif spamtest :percent "5" { keep; }',
        'require "mailbox";\nif mailboxexists { keep; }',
        'require "reject";\nreject;',
        'require "body";\nif body :content "text" { keep; }',
        'require "subaddress";\nif address :user :detail "to" "x" { keep; }',
    ],
)
def test_check_finds_extension_errors_on_line_two(script):
    errors = sieve.check(script)
    assert errors and errors[0].line == 2, errors


def test_core_check_never_raises_on_garbage():
    for text in ["", "{", '"', "if", "text:\r\nx", "\x00\xff", "require [", "/* open"]:
        errors = sieve.check(text)
        assert isinstance(errors, list)
    assert sieve.check("") == []


# --- fileinto (RFC 5228 4.1) -----------------------------------------------------------------


def test_fileinto():
    result = run('require "fileinto"; fileinto "Work"; fileinto "Work";')
    assert result.actions == [FileInto("Work")]
    assert not result.implicit_keep


def test_fileinto_and_keep():
    result = run('require "fileinto"; fileinto "Work"; keep;')
    assert result.actions == [FileInto("Work"), Keep()]


# --- reject / ereject (RFC 5429) -------------------------------------------------------------


def test_reject():
    result = run('require "reject"; reject "Not wanted here.";')
    assert result.actions == [Reject("Not wanted here.")]
    assert not result.implicit_keep


def test_ereject():
    result = run('require "ereject"; ereject "550 policy";')
    assert result.actions == [Reject("550 policy", extended=True)]
    assert not result.implicit_keep


def test_reject_conflicts_with_fileinto_at_run_time():
    result = failed('require ["reject", "fileinto"]; fileinto "Work"; reject "no";')
    assert "reject" in result.errors[0].message


def test_reject_conflicts_with_vacation():
    failed('require ["reject", "vacation"]; vacation "away"; reject "no";')


# --- envelope (RFC 5228 5.4) -----------------------------------------------------------------


def test_envelope():
    script = """require ["envelope", "fileinto"];
    if envelope :is "from" "bob@remote.example" { fileinto "from"; }
    if envelope :is :domain "to" "example.org" { fileinto "to-domain"; }
    if envelope :is "from" "" { fileinto "null"; }"""
    assert folders(script) == ["from", "to-domain"]
    assert folders(script, envelope_from="") == ["to-domain", "null"]


# --- encoded-character (RFC 5228 2.4.2.4) ----------------------------------------------------


def test_encoded_character():
    script = """require ["encoded-character", "fileinto"];
    if header :contains "subject" "${hex:4C 75 6E 63 68}" { fileinto "${unicode:57}ork"; }"""
    assert folders(script) == ["Work"]


# --- imap4flags (RFC 5232) -------------------------------------------------------------------


def test_imap4flags_implicit_keep_gets_internal_flags():
    result = run('require "imap4flags"; setflag "\\\\Seen"; addflag ["$Work", "\\\\Flagged"];')
    assert result.actions == []
    assert result.implicit_keep
    assert set(result.implicit_keep_flags) == {"\\Seen", "$Work", "\\Flagged"}


def test_imap4flags_flags_tag_and_hasflag():
    script = r"""require ["imap4flags", "fileinto"];
    addflag "\\Seen";
    removeflag "\\Seen";
    addflag "$Later";
    if hasflag "$later" { fileinto :flags "\\Answered" "Work"; }
    keep;"""
    result = run(script)
    assert result.actions == [FileInto("Work", flags=("\\Answered",)), Keep(flags=("$Later",))]


def test_imap4flags_ignores_flags_imap_cannot_store():
    # RFC 5232 2: an unknown system flag or a keyword that is no IMAP atom is ignored.
    script = r"""require "imap4flags"; setflag ["\\Recent", "\\Frop", "(x)", "", "$ok \\Seen"];"""
    assert set(run(script).implicit_keep_flags) == {"$ok", "\\Seen"}


def test_imap4flags_variable():
    script = r"""require ["imap4flags", "variables", "fileinto"];
    set "mine" "";
    addflag "mine" "\\Flagged";
    fileinto :flags "${mine}" "Work";"""
    assert actions(script) == [FileInto("Work", flags=("\\Flagged",))]


# --- body (RFC 5173) -------------------------------------------------------------------------

MULTIPART = message(
    "Subject: Report",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="b1"',
    body=(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "The quarterly=\r\n report is attached.\r\n"
        "--b1\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nc2VjcmV0IHBheWxvYWQ=\r\n"
        "--b1--\r\n"
    ),
)


def test_body_raw_content_text():
    script = """require ["body", "fileinto"];
    if body :raw :contains "quarterly=" { fileinto "raw-sees-encoding"; }
    if body :content "text" :contains "quarterly report" { fileinto "decoded"; }
    if body :content "application/octet-stream" :contains "secret payload" { fileinto "b64"; }
    if body :text :contains "secret payload" { fileinto "text-has-binary"; }
    if body :contains "Lunch" { fileinto "default-is-text"; }"""
    assert folders(script, MULTIPART) == ["raw-sees-encoding", "decoded", "b64"]


FORWARDED = message(
    "Subject: Fwd: contract",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="f"',
    body=(
        "--f\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        "--f\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: legal@firm.example\r\nSubject: Contract draft\r\n"
        "Content-Type: text/plain\r\n\r\nReady for signature.\r\n"
        "--f--\r\n"
    ),
)


def test_body_content_message_rfc822_searches_the_nested_header():
    # RFC 5173 5.2: a message/rfc822 part is searched in its header only; the nested
    # text part is searched when "text" is asked for.
    script = """require ["body", "fileinto"];
    if body :content "message/rfc822" :contains "Contract draft" { fileinto "header"; }
    if body :content "message/rfc822" :contains "Ready for" { fileinto "nested-body"; }
    if body :content "text/plain" :contains "Ready for" { fileinto "nested-text"; }"""
    assert folders(script, FORWARDED) == ["header", "nested-text"]


def test_body_wildcards_never_set_match_variables():
    # RFC 5173 6: "body :matches" leaves ${1} as the last other test set it.
    script = """require ["body", "variables", "fileinto"];
    if header :matches "subject" "* *" { }
    if body :matches "*tomorrow*" { fileinto "kept-${1}"; }"""
    assert folders(script) == ["kept-Lunch"]


# --- variables (RFC 5229) --------------------------------------------------------------------


def test_variables_set_modifiers_and_match():
    script = """require ["variables", "fileinto"];
    if header :matches "from" "* <*@*>" { set :lower "who" "${1}"; set "dom" "${3}"; }
    set :upperfirst "x" "lists";
    set :length "n" "${dom}";
    fileinto "${x}/${who}-${dom}-${n}";"""
    assert folders(script) == ["Lists/bob-remote.example-14"]


def test_variables_string_test():
    script = """require ["variables", "fileinto"];
    set "a" "one";
    if string :is "${a}" "one" { fileinto "yes"; }
    if string :is "${undefined}" "" { fileinto "empty"; }"""
    assert folders(script) == ["yes", "empty"]


# --- vacation (RFC 5230) and vacation-seconds (RFC 6131) -------------------------------------


def test_vacation_defaults():
    result = run('require "vacation"; vacation "I am away.";')
    [vacation] = result.actions
    assert isinstance(vacation, Vacation)
    assert vacation.reason == "I am away."
    assert vacation.seconds == 7 * 86400
    assert vacation.subject is None and vacation.from_address is None
    assert vacation.handle  # derived (RFC 5230 4.2)
    assert result.implicit_keep  # vacation does not cancel it (RFC 5230 4)


def test_vacation_arguments():
    script = """require "vacation";
    vacation :days 3 :subject "Away" :from "alice@example.org"
             :addresses ["a.example@example.org"] :handle "h1" :mime
             "Content-Type: text/plain\r\n\r\nAway.";"""
    [vacation] = actions(script)
    assert vacation == Vacation(
        reason="Content-Type: text/plain\r\n\r\nAway.",
        subject="Away",
        from_address="alice@example.org",
        addresses=("a.example@example.org",),
        mime=True,
        handle="h1",
        seconds=3 * 86400,
        days=3,
    )


def test_vacation_handle_differs_with_reason():
    [one] = actions('require "vacation"; vacation "one";')
    [two] = actions('require "vacation"; vacation "two";')
    assert one.handle != two.handle


def test_vacation_seconds():
    [vacation] = actions('require "vacation-seconds"; vacation :seconds 3600 "brb";')
    assert vacation.seconds == 3600
    [vacation] = actions('require "vacation-seconds"; vacation :seconds 0 "always";')
    assert vacation.seconds == 0  # RFC 6131 2: 0 means reply every time


def test_vacation_twice_is_an_error():
    failed('require "vacation"; vacation "a"; vacation "b";')


# --- copy (RFC 3894) -------------------------------------------------------------------------


def test_copy_keeps_implicit_keep():
    result = run(
        'require ["copy", "fileinto"]; fileinto :copy "Archive"; redirect :copy "x@y.example";'
    )
    assert result.actions == [FileInto("Archive", copy=True), Redirect("x@y.example", copy=True)]
    assert result.implicit_keep


# --- relational (RFC 5231) -------------------------------------------------------------------


def test_relational_count_and_value():
    raw = message("To: a@example.org, b@example.org", "Cc: c@example.org", "X-Priority: 2")
    script = """require ["relational", "comparator-i;ascii-numeric", "fileinto"];
    if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "three"; }
    if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "high"; }
    if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "2" { fileinto "wrong"; }
    if header :count "eq" :comparator "i;ascii-numeric" "x-missing" "0" { fileinto "none"; }"""
    assert folders(script, raw) == ["three", "high", "none"]


# --- subaddress (RFC 5233) -------------------------------------------------------------------


def test_subaddress():
    script = """require ["subaddress", "envelope", "fileinto", "variables"];
    if envelope :user "to" "alice" { fileinto "user"; }
    if envelope :matches :detail "to" "*" { fileinto "detail-${1}"; }"""
    assert folders(script, envelope_to="alice+lists@example.org") == ["user", "detail-lists"]
    assert folders(script, envelope_to="alice@example.org") == ["user"]  # no detail: no match
    assert folders(script, envelope_to="alice+@example.org") == ["user", "detail-"]


# --- date and index (RFC 5260) ---------------------------------------------------------------


def test_date_header_and_zones():
    script = """require ["date", "relational", "fileinto"];
    if date :is "date" "date" "2026-11-28" { fileinto "day"; }
    if date :is :originalzone "date" "hour" "14" { fileinto "local-hour"; }
    if date :is :zone "+0000" "date" "hour" "13" { fileinto "utc-hour"; }
    if date :is "date" "weekday" "6" { fileinto "saturday"; }"""
    now = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    assert folders(script, now=now) == ["day", "local-hour", "utc-hour", "saturday"]


def test_date_with_zone_minus_0000_is_utc():
    # RFC 5322 3.3: -0000 is UTC with the local zone unknown (Python parses it naive).
    raw = message("Date: Thu, 03 Dec 2026 04:00:00 -0000")
    script = """require ["date", "variables", "fileinto"];
    if date :originalzone :matches "date" "iso8601" "*" { fileinto "${1}"; }"""
    assert folders(script, raw) == ["2026-12-03T04:00:00Z"]


def test_currentdate_uses_context_now():
    script = """require ["date", "relational", "fileinto", "variables"];
    if currentdate :matches "iso8601" "*" { fileinto "${1}"; }"""
    now = datetime(2026, 12, 3, 5, 30, 0, tzinfo=timezone(timedelta(hours=1)))
    assert folders(script, now=now) == ["2026-12-03T05:30:00+01:00"]


def test_index():
    raw = message("X-Label: one", "X-Label: two", "X-Label: three")
    script = """require ["index", "fileinto"];
    if header :index 2 "x-label" "two" { fileinto "second"; }
    if header :index 1 :last "x-label" "three" { fileinto "last"; }
    if header :index 1 "x-label" "two" { fileinto "wrong"; }"""
    assert folders(script, raw) == ["second", "last"]


def test_index_counts_from_one():
    assert_compile_error('require "index";\nif header :index 0 "received" "x" { keep; }', 2)


# --- regex (draft-ietf-sieve-regex) ----------------------------------------------------------


def test_regex():
    script = """require ["regex", "variables", "fileinto"];
    if header :regex "subject" "^(lunch|dinner) (tomorrow|today)$" { fileinto "${1}-${2}"; }"""
    assert folders(script) == ["Lunch-tomorrow"]


def test_regex_optional_group_with_a_star_is_accepted():
    # The subaddress idiom of Pigeonhole's regex tests: an optional group cannot backtrack
    # catastrophically, so the guard against nested repetition must let it through.
    script = """require ["regex", "fileinto"];
    if address :regex "from" "bob(\\\\+.*)?@remote\\\\.example" { fileinto "bob"; }"""
    assert folders(script) == ["bob"]


def test_regex_bad_pattern_is_a_compile_error():
    assert_compile_error('require "regex";\nif header :regex "subject" "(" { keep; }', 2)


# --- include (RFC 6609) ----------------------------------------------------------------------


def test_include_personal_global_return_and_globals():
    scripts = {
        ("lists", "personal"): """require ["include", "variables", "fileinto"];
            global "where";
            if header :contains "subject" "lunch" { set "where" "Food"; return; }
            set "where" "Other";""",
        ("base", "global"): 'require "fileinto"; fileinto "from-global";',
    }
    loads = []

    def include(name, location):
        loads.append((name, location))
        return scripts.get((name, location))

    script = """require ["include", "variables", "fileinto"];
    global "where";
    include :global "base";
    include :personal "lists";
    fileinto "${where}";"""
    assert folders(script, include=include) == ["from-global", "Food"]
    assert loads == [("base", "global"), ("lists", "personal")]


def test_include_name_is_never_expanded():
    # RFC 6609 3.2: the name MUST be a constant string; variables are not expanded.
    assert_compile_error('require ["include", "variables"];\ninclude "${name}";', 2)


def test_include_missing_optional_and_missing():
    script = 'require ["include", "fileinto"]; include :optional "nope"; fileinto "after";'
    assert folders(script, include=lambda name, location: None) == ["after"]
    failed('require "include"; include "nope";', include=lambda name, location: None)


def test_include_loop_is_a_run_time_error():
    failed(
        'require "include"; include "self";',
        include=lambda name, location: 'require "include"; include "self";',
    )


# --- mailbox (RFC 5490) and mailboxid (RFC 9042) ---------------------------------------------


def test_mailboxexists_and_create():
    script = """require ["mailbox", "fileinto"];
    if mailboxexists "Work" { fileinto :create "Work"; }
    if mailboxexists ["Work", "Nope"] { fileinto "wrong"; }"""
    result = run(script, mailbox_exists=lambda name: name in {"INBOX", "Work"})
    assert result.actions == [FileInto("Work", create=True)]


def test_mailboxid():
    script = """require ["mailboxid", "fileinto"];
    if mailboxidexists "F1234" { fileinto :mailboxid "F1234" "Work"; }
    if mailboxidexists "F9999" { fileinto "wrong"; }"""
    result = run(script, mailboxid_exists=lambda mid: mid == "F1234")
    assert result.actions == [FileInto("Work", mailboxid="F1234")]


# --- duplicate (RFC 7352) --------------------------------------------------------------------


def test_duplicate_uses_the_callback():
    seen: dict[str, int] = {}

    def duplicate(key, seconds):
        found = key in seen
        seen[key] = seconds
        return found

    script = 'require ["duplicate", "fileinto"]; if duplicate { discard; } else { fileinto "new"; }'
    assert folders(script, duplicate=duplicate) == ["new"]
    assert actions(script, duplicate=duplicate) == [Discard()]
    assert len(seen) == 1 and list(seen.values()) == [7 * 86400]  # default :seconds (RFC 7352 3.3)
    script = """require "duplicate";
    if duplicate :header "subject" :seconds 60 { discard; }"""
    assert actions(script, duplicate=duplicate) == []
    assert 60 in seen.values()


# --- editheader (RFC 5293) -------------------------------------------------------------------


def test_editheader_edits_are_seen_by_later_tests():
    script = """require ["editheader", "fileinto"];
    addheader "X-Filtered" "yes";
    deleteheader "subject";
    if header :is "x-filtered" "yes" { fileinto "added"; }
    if not exists "subject" { fileinto "deleted"; }"""
    result = run(script)
    assert [a.mailbox for a in result.actions] == ["added", "deleted"]
    assert result.header_edits == [AddHeader("X-Filtered", "yes"), DeleteHeader("subject", (1,))]
    edited = result.header_edits.apply(PLAIN)
    assert edited.startswith(b"X-Filtered: yes\r\n")
    assert b"Subject:" not in edited
    assert edited.endswith(PLAIN.split(b"\r\n\r\n", 1)[1])


def test_editheader_cannot_touch_received():
    raw = message("Received: from a by b; Sat, 28 Nov 2026 14:05:01 +0100")
    script = """require ["editheader", "fileinto"];
    deleteheader "received";
    if exists "received" { fileinto "kept"; }"""
    assert folders(script, raw) == ["kept"]


def test_editheader_cannot_add_auto_submitted():
    script = """require ["editheader", "fileinto"];
    addheader "Auto-Submitted" "auto-generated";
    if exists "auto-submitted" { fileinto "added"; }"""
    result = run(script)
    assert result.actions == []
    assert result.header_edits == []


# --- enotify (RFC 5435) with mailto (RFC 5436) -----------------------------------------------


def test_enotify_mailto():
    script = """require ["enotify", "variables"];
    if header :matches "subject" "*" { set "s" "${1}"; }
    notify :importance "1" :from "sieve@example.org" :message "New: ${s}" "mailto:alice@mobile.example";"""
    result = run(script)
    assert result.actions == [
        Notify(
            method="mailto:alice@mobile.example",
            from_address="sieve@example.org",
            importance="1",
            message="New: Lunch tomorrow",
        )
    ]
    assert result.implicit_keep


def test_enotify_valid_method_and_encodeurl():
    script = """require ["enotify", "variables", "fileinto"];
    if valid_notify_method "mailto:alice@example.org" { fileinto "mailto"; }
    if valid_notify_method "xmpp:alice@example.org" { fileinto "xmpp"; }
    set :encodeurl "e" "a b&c";
    fileinto "${e}";"""
    assert folders(script) == ["mailto", "a%20b%26c"]


# --- spamtest, spamtestplus, virustest (RFC 5235) --------------------------------------------


def test_spamtest_from_context():
    script = """require ["spamtest", "variables", "fileinto"];
    if spamtest :matches "*" { fileinto "s-${1}"; }"""
    assert folders(script) == ["s-0"]  # not tested
    assert folders(script, spam_score=0.0) == ["s-1"]
    # 1 + score/max * 9 rounded down, Pigeonhole's scale (RFC 5235 leaves it open): only a
    # score at the top counts as 10, "definitely spam".
    assert folders(script, spam_score=7.5, spam_max=10.0) == ["s-7"]
    assert folders(script, spam_score=9.99, spam_max=10.0) == ["s-9"]
    assert folders(script, spam_score=10.0, spam_max=10.0) == ["s-10"]
    assert folders(script, spam_score=25.0, spam_max=10.0) == ["s-10"]


def test_spamtestplus_percent():
    script = """require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto"];
    if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { fileinto "Junk"; }"""
    assert folders(script, spam_score=6.0, spam_max=10.0) == ["Junk"]
    assert folders(script, spam_score=4.0, spam_max=10.0) == []


def test_virustest_from_context():
    script = """require ["virustest", "relational", "comparator-i;ascii-numeric", "fileinto"];
    if virustest :value "ge" :comparator "i;ascii-numeric" "4" { fileinto "Quarantine"; }
    if virustest :is "0" { fileinto "untested"; }"""
    assert folders(script, virus_score=5.0, virus_max=5.0) == ["Quarantine"]
    assert folders(script, virus_score=3.0, virus_max=5.0) == []  # 1 + 60% of 4 = 3
    assert folders(script, virus_score=0.0, virus_max=5.0) == []  # 1: clean
    assert folders(script) == ["untested"]


# --- safety -----------------------------------------------------------------------------------


def test_redirect_limit_is_a_run_time_error():
    script = "".join(f'redirect "u{i}@x.example";' for i in range(10))
    result = failed(script)
    assert "redirect" in result.errors[0].message


def test_step_budget_ends_a_run_and_keeps_the_mail():
    script = 'require "fileinto";' + 'if header :contains "subject" "x" { keep; }' * 100
    script += 'fileinto "never";'
    result = failed(script, limits=Limits(max_steps=50))
    assert "steps" in result.errors[0].message

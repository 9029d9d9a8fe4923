"""Differential test: every corpus case through Pigeonhole's `sieve-test` and through ours.

Each case (corpus/cases/*.sieve, a script plus a message from corpus/messages/) runs through
both interpreters; both results are reduced to the same normalized action lines
(tests/mailboxes/sieve/pigeonhole.py explains the form) and must be equal, except for the cases
in EXPECTED_DIFFERENCES, where Pigeonhole is wrong per the RFC or we differ on purpose: there
ours must give exactly the listed lines (and Pigeonhole must still give something else, so that
the table never goes stale). README's "Sieve tested against Pigeonhole" lists the same. `python -m
tests.mailboxes.sieve.pigeonhole --compare` prints the agreement figure.

Pigeonhole's answers are recorded in corpus/pigeonhole.json; test_recorded_matches_sieve_test
checks the record against the installed sieve-test (Debian: dovecot-sieve) and is skipped
without it, the comparison itself runs from the record.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import pigeonhole
from .pigeonhole import Case, run_ours

CASES = pigeonhole.load_cases()
RECORDED = pigeonhole.recorded()

# The extensions the issue names. Debian 12's Pigeonhole (0.5.19) has neither ereject nor
# mailboxid (nor special-use), so those are covered by the transcript tests only
# (test_extensions.py).
ISSUE_EXTENSIONS = {
    "fileinto", "reject", "envelope", "encoded-character", "imap4flags", "body", "variables",
    "vacation", "vacation-seconds", "copy", "relational", "subaddress", "date", "index", "regex",
    "include", "mailbox", "duplicate", "editheader", "enotify", "spamtest", "spamtestplus",
    "virustest",
}  # fmt: skip
NOT_IN_PIGEONHOLE = {"ereject", "mailboxid", "special-use"}

# case name -> (our normalized lines, why they differ from Pigeonhole's).
EXPECTED_DIFFERENCES: dict[str, tuple[list[str], str]] = {
    "date-received": (
        ["store first-received", "store second-received", "store last-received"],
        "date :index with :zone picks the given occurrence (RFC 5260 6); Pigeonhole 0.5.19 "
        "ignores :index when :zone is given and always reads the first Received.",
    ),
    "enotify-two": (
        [
            "notify mailto:one@mobile.example importance=3",
            "notify mailto:two@mobile.example,three@mobile.example importance=2 message=again",
            "implicit-keep",
        ],
        "A mailto: URI may list several addresses separated by commas (RFC 6068 2); "
        "Pigeonhole 0.5.19 refuses the comma.",
    ),
    "include-broken": (
        ["runtime-error", "implicit-keep"],
        "Included scripts are loaded when the mail arrives (each is checked when it is "
        "uploaded): a broken, missing or looping include is a run-time error, the message "
        "goes to INBOX and the reason is recorded. Pigeonhole compiles includes with the "
        "script and refuses the whole script.",
    ),
    "include-loop": (["runtime-error", "implicit-keep"], "As include-broken."),
    "include-missing": (["runtime-error", "implicit-keep"], "As include-broken."),
    "match-contains-edge": (
        ["store contains-empty", "store casemap-is"],
        "string without :comparator compares with i;ascii-casemap (RFC 5228 2.7.3); "
        "Pigeonhole 0.5.19's string test compares octets.",
    ),
    "match-matches-edge": (
        [
            "store empty-star",
            "store double-star",
            "store escaped-star",
            "store suffix",
            "store star-qmark-star",
        ],
        '"x" :matches "*?*" (RFC 5228 2.7.1: any string of one character or more); '
        "Pigeonhole 0.5.19 says no.",
    ),
    "addr-bad-13": (
        ["redirect jürgen@example.com"],
        "An internationalized address (RFC 6532) is a redirect target: Mailhost relays it with "
        "SMTPUTF8 (RFC 6531); Pigeonhole 0.5.19 takes ASCII addresses only.",
    ),
    "body-empty": (
        ["store empty-matches-empty", "store is-empty", "store raw-star", "store small"],
        "A message without a body has the empty body (RFC 5322 3.5 makes it optional): "
        'body :is "" and :contains "" match it; Pigeonhole finds nothing to test.',
    ),
    "grid2-headeronly": (
        [
            "store text 0",
            "store raw 0",
            "store plain 0",
            "store d year [2026]",
            "store d month [12]",
            "store d day [03]",
            "store d date [2026-12-03]",
            "store d julian [61377]",
            "store d hour [01]",
            "store d minute [02]",
            "store d second [03]",
            "store d time [01:02:03]",
            "store d iso8601 [2026-12-03T01:02:03Z]",
            "store d std11 [Thu, 03 Dec 2026 01:02:03 +0000]",
            "store d zone [+0000]",
            "store d weekday [4]",
            "store utc [2026-12-03T01:02:03Z]",
        ],
        "As body-empty: the missing body is the empty body.",
    ),
    "header-odd-values": (
        [
            "store weird-=?x-unknown-charset?Q?caf=E9?=",
            "store tabbed-value?with?tabs",
            "store folded-first part?second part  third part",
        ],
        "An encoded word in a charset nobody knows stays as written (RFC 2047 6.2), where "
        "Pigeonhole decodes it to replacement characters; unfolding removes the CRLF only "
        "(RFC 5322 2.2.3) and keeps the tab that Pigeonhole turns into a space.",
    ),
    "match-unicode-chars": (
        [
            "store qmark-is-a-character",
            "store ascii-fold",
            "store octet-qmark-char",
        ],
        ':matches "?" is one character, also a non-ASCII one (RFC 5228 2.7.1), so '
        '"Gr????e*" does not match "Grüße aus München"; Pigeonhole 0.5.19 takes "?" for '
        "one octet (an ü needs two).",
    ),
    "runtime-fileinto-empty-variable": (
        ["runtime-error", "implicit-keep"],
        'fileinto "" (a variable that expands to nothing) is a run-time error, so the '
        'message goes to INBOX with the reason; Pigeonhole lists a store into the folder "" '
        "that fails only when it is carried out.",
    ),
    "ph-copy-keep-fileinto-same": (
        ["store Work"],
        'fileinto :copy "Work" then fileinto "Work": the second cancels the implicit keep '
        "(RFC 3894 3, RFC 5228 2.10.2) and both are one delivery into Work; Pigeonhole "
        "merges them and still keeps the message in INBOX as well.",
    ),
    "ph-editheader-protected": (
        ["store auto-submitted-kept"],
        'addheader "Auto-Submitted" is ignored like deleting it (RFC 5293 6 lets local policy '
        "limit additions; a script could otherwise make a message look automatic or not to "
        "the loop and vacation checks); Pigeonhole only forbids the deletion.",
    ),
}


def _ids(case: Case) -> str:
    return case.name


def _required(script: str) -> set[str]:
    names: set[str] = set()
    for block in re.findall(r"require\s*(\[[^\]]*\]|\"[^\"]*\")", script):
        names.update(re.findall(r"\"([^\"]*)\"", block))
    return names


def test_corpus_size_and_coverage():
    assert len(CASES) >= 100
    assert set(RECORDED) == {case.name for case in CASES}, "run pigeonhole.py --record"
    required = set().union(*(_required(case.script) for case in CASES))
    assert ISSUE_EXTENSIONS <= required, ISSUE_EXTENSIONS - required
    for name in ISSUE_EXTENSIONS:
        uses = [c for c in CASES if name in _required(c.script) and not c.name.startswith("err-")]
        assert len(uses) >= 2, f"{name}: {len(uses)} cases"
    transcripts = Path(__file__).with_name("test_extensions.py").read_text()
    for name in NOT_IN_PIGEONHOLE - {"special-use"}:
        assert f'require "{name}"' in transcripts or f'"{name}"' in transcripts, name


@pytest.fixture(scope="module")
def sieve_test():
    if not pigeonhole.sieve_test_path():
        pytest.skip("sieve-test is not installed (Debian package dovecot-sieve): the record stands")
    ph = pigeonhole.Pigeonhole()
    yield ph
    ph.close()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_recorded_matches_sieve_test(case, sieve_test):
    assert sieve_test.run(case) == RECORDED[case.name]


# ---------------------------------------------------------------------------------------------
# Our side


def _sieve():
    try:
        from mailboxes import sieve
    except ImportError:
        pytest.skip("mailboxes.sieve is not there yet")
    if not hasattr(sieve, "run"):
        pytest.skip("mailboxes.sieve has no run() yet")
    return sieve


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_same_actions_as_pigeonhole(case):
    sieve = _sieve()
    theirs = RECORDED[case.name]
    ours = run_ours(sieve, case)
    if case.name in EXPECTED_DIFFERENCES:
        expected, _reason = EXPECTED_DIFFERENCES[case.name]
        assert theirs != expected, "Pigeonhole agrees now: drop the row"
        assert ours == expected
    else:
        assert ours == theirs

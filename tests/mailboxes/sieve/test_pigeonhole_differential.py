"""Differential test: every corpus case through Pigeonhole's `sieve-test` and through ours.

Each case (corpus/cases/*.sieve, a script plus a message from corpus/messages/) runs through
both interpreters; both results are reduced to the same normalized action lines
(tests/mailboxes/sieve/pigeonhole.py explains the form) and must be equal, except for the cases
in EXPECTED_DIFFERENCES, where Pigeonhole is wrong per the RFC or we differ on purpose: there
ours must give exactly the listed lines (and Pigeonhole must still give something else, so that
the table never goes stale). README's "Sieve: differences from Pigeonhole" lists the same.

Pigeonhole's answers are recorded in corpus/pigeonhole.json; test_recorded_matches_sieve_test
checks the record against the installed sieve-test (Debian: dovecot-sieve) and is skipped
without it, the comparison itself runs from the record.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from . import pigeonhole
from .pigeonhole import GLOBAL, MAILBOXES, PERSONAL, Case

CASES = pigeonhole.load_cases()
RECORDED = pigeonhole.recorded()

# The extensions the issue names. Debian 12's Pigeonhole (0.5.19) has neither ereject nor
# mailboxid (nor special-use), so those are covered by the transcript tests only.
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
        ["redirect rüdiger@example.com"],
        "An internationalized address (RFC 6532) is a redirect target: Mailhost relays it with "
        "SMTPUTF8 (RFC 6531); Pigeonhole 0.5.19 takes ASCII addresses only.",
    ),
    "odd-address-empty": (
        ["store reply-to-exists"],
        "Reply-To: <> holds no address (an angle-addr needs an addr-spec, RFC 5322 3.4); "
        'Pigeonhole matches the text "<>" with :all.',
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


def _spam_score(raw: bytes, header: str) -> float | None:
    match = re.search(rb"^" + header.encode() + rb":\s*(-?[0-9.]+)", raw, re.M | re.I)
    return float(match.group(1)) if match else None


def _loader(name: str, location: str) -> str | None:
    path = (PERSONAL if location == "personal" else GLOBAL) / f"{name}.sieve"
    return path.read_text() if path.exists() else None


def context_for(sieve, case: Case):
    return sieve.SieveContext(
        raw=case.raw,
        envelope_from=case.mail_from,
        envelope_to=case.rcpt_to,
        spam_score=_spam_score(case.raw, pigeonhole.SPAM_HEADER),
        spam_max=pigeonhole.SPAM_MAX,
        virus_score=_spam_score(case.raw, pigeonhole.VIRUS_HEADER),
        virus_max=pigeonhole.VIRUS_MAX,
        mailbox_exists=lambda name: name.upper() == "INBOX" or name in MAILBOXES,
        duplicate=lambda _id, _seconds: False,
        include=_loader,
    )


def _flags(flags) -> str:
    if not flags:
        return ""
    names = sorted({f.lower() if f.startswith("\\") else f for f in flags})
    return " flags=" + " ".join(names)


def _text(text: str) -> str:
    return re.sub(r"[\x00-\x1f]", "?", text)


def _mailto(uri: str) -> str:
    scheme, _, rest = uri.partition(":")
    to, _, query = rest.partition("?")
    recipients = [unquote(a) for a in to.split(",") if a]
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        if key.lower() == "to":
            recipients.extend(unquote(a) for a in value.split(",") if a)
    return f"{scheme}:" + ",".join(recipients)


def _uri_subject(uri: str) -> str | None:
    for pair in uri.partition("?")[2].split("&"):
        key, _, value = pair.partition("=")
        if key.lower() == "subject":
            return unquote(value)
    return None


def normalize_ours(result, script: str) -> list[str]:
    lines = ["runtime-error"] if result.errors else []
    for action in result.actions:
        kind = type(action).__name__
        copy = " copy" if getattr(action, "copy", False) else ""
        if kind == "Keep":
            lines.append("store INBOX" + _flags(action.flags))
        elif kind == "FileInto":
            # INBOX is the same folder in any case (RFC 3501 5.1; selectors.folder_get).
            mailbox = "INBOX" if action.mailbox.upper() == "INBOX" else action.mailbox
            lines.append(f"store {mailbox}{copy}" + _flags(action.flags))
        elif kind == "Redirect":
            lines.append(f"redirect {action.address}{copy}")
        elif kind == "Discard":
            lines.append("discard")
        elif kind == "Reject":
            lines.append(f"reject {_text(action.reason)}")
        elif kind == "Vacation":
            parts = ["vacation", f"seconds={action.seconds}"]
            if action.subject is not None:
                parts.append(f"subject={action.subject}")
            if action.from_address is not None:
                parts.append(f"from={action.from_address}")
            if action.handle is not None and ":handle" in script:
                parts.append(f"handle={action.handle}")
            parts.append(f"reason={_text(action.reason)}")
            lines.append(" ".join(parts))
        elif kind == "Notify":
            parts = ["notify", _mailto(action.method)]
            parts.append(f"importance={action.importance or 2}")
            if action.from_address:
                parts.append(f"from={action.from_address}")
            # Pigeonhole shows the notification's subject: :message, else the URI's subject.
            subject = action.message or _uri_subject(action.method)
            if subject:
                parts.append(f"message={subject}")
            lines.append(" ".join(parts))
        else:
            lines.append(f"other {action!r}")
    if result.implicit_keep:
        lines.append("implicit-keep" + _flags(getattr(result, "implicit_keep_flags", ())))
    return lines


def run_ours(sieve, case: Case) -> list[str]:
    if sieve.check(case.script):
        return ["compile-error"]
    script = sieve.compile(case.script)
    return normalize_ours(sieve.run(script, context_for(sieve, case)), case.script)


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

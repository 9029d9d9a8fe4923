"""Whether a vacation reply goes out at all, against Pigeonhole: plain.eml with one thing
changed per case (pigeonhole.VACATION_CASES: lists, bulk, auto-submitted, mail-system senders,
the user not addressed, the user's own mail), `sieve-test -e` carrying out a plain vacation
action on one side and delivery.autoreply.vacation_refusal, which the MDA asks before it sends
one, on the other. Recorded in corpus/pigeonhole-vacation.json (pigeonhole.py --record).
"""

from __future__ import annotations

import pytest

from delivery import autoreply

from . import pigeonhole
from .pigeonhole import VacationCase

RECORDED = pigeonhole.vacation_recorded()

# case name -> (ours, why it differs from Pigeonhole).
EXPECTED_DIFFERENCES: dict[str, tuple[str, str]] = {
    "bounces-suffix": (
        "skip",
        "dev-bounces@ (Mailman's bounce address) gets no reply, like owner-* and *-request "
        "(RFC 5230 4.6 names those; the bounce processor would count the reply as a bounce); "
        "Pigeonhole answers it.",
    ),
    "noreply": (
        "skip",
        "noreply@, no-reply@, do-not-reply@ get no reply: nobody reads it; Pigeonhole answers.",
    ),
}


def ours(case: VacationCase) -> str:
    why = autoreply.vacation_refusal(
        case.raw, mail_from=case.mail_from, user_addresses=[case.rcpt_to]
    )
    return "skip" if why else "send"


def test_every_case_is_recorded():
    assert set(RECORDED) == {case.name for case in pigeonhole.VACATION_CASES}
    assert "?" not in RECORDED.values()
    assert {"send", "skip"} <= set(RECORDED.values())


@pytest.fixture(scope="module")
def sieve_test():
    if not pigeonhole.sieve_test_path():
        pytest.skip("sieve-test is not installed (Debian package dovecot-sieve): the record stands")
    ph = pigeonhole.Pigeonhole()
    yield ph
    ph.close()


@pytest.mark.parametrize("case", pigeonhole.VACATION_CASES, ids=lambda case: case.name)
def test_recorded_matches_sieve_test(case, sieve_test):
    assert sieve_test.vacation(case) == RECORDED[case.name]


@pytest.mark.parametrize("case", pigeonhole.VACATION_CASES, ids=lambda case: case.name)
def test_same_decision_as_pigeonhole(case):
    if case.name in EXPECTED_DIFFERENCES:
        expected, _reason = EXPECTED_DIFFERENCES[case.name]
        assert RECORDED[case.name] != expected, "Pigeonhole agrees now: drop the row"
        assert ours(case) == expected
    else:
        assert ours(case) == RECORDED[case.name]

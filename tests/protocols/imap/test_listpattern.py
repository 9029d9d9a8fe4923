"""LIST/LSUB patterns (RFC 9051 6.3.9): the linear-time matcher against the regular
expression it replaced, on inputs small enough for the regex to be quick."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.imap.listpattern import MailboxPattern

DELIMITER = "/"


def reference_regex(reference: str, pattern: str) -> re.Pattern:
    """The former protocols.imap.commands.mailbox.pattern_regex (backtracking)."""
    if pattern.startswith(DELIMITER) and reference.endswith(DELIMITER):
        full = reference + pattern[1:]
    else:
        full = reference + pattern
    out = []
    for char in full:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            out.append(re.escape(char))
    text = "".join(out)
    if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in (DELIMITER, "*", "%")):
        text = "(?i:INBOX)" + "".join(out[5:])
    return re.compile(text + r"\Z", re.DOTALL)


def matches(reference: str, pattern: str, name: str) -> bool:
    return MailboxPattern.compile(reference, pattern, delimiter=DELIMITER).matches(name)


# Few distinct characters, so that matches are frequent; INBOX in both cases for its rule.
ALPHABET = "ab/.%*INBOXinbox"
NAMES = st.text(alphabet="ab/.INBOXinboxé", max_size=12)


@settings(max_examples=2000, deadline=200)
@given(
    reference=st.text(alphabet=ALPHABET, max_size=6),
    pattern=st.text(alphabet=ALPHABET, max_size=8),
    name=NAMES,
)
def test_matcher_agrees_with_the_former_regex(reference, pattern, name):
    expected = reference_regex(reference, pattern).match(name) is not None
    assert matches(reference, pattern, name) == expected


@settings(max_examples=300, deadline=500)
@given(
    pattern=st.text(alphabet="a%*/", min_size=100, max_size=200),
    name=st.text(alphabet="a/", min_size=20, max_size=255),
)
def test_any_long_pattern_is_matched_quickly(pattern, name):
    # Each example has hypothesis' deadline; a backtracking matcher blows it on these.
    matches("", pattern + "b", name)


def test_known_cases():
    assert matches("", "*", "Work/2024/Q1")
    assert not matches("", "%", "Work/2024")
    assert matches("Work/", "%", "Work/2024")
    assert matches("Work/", "/%", "Work/2024")
    assert matches("", "inbox", "INBOX")
    assert matches("", "InBoX/%", "INBOX/x")
    assert not matches("", "inboxes", "INBOXES")
    assert matches("", "Entw*", "Entwürfe")
    assert matches("", "a%%%*%b", "a/x/b")
    assert not matches("", "a%%%%b", "a/x/b")


def test_hostile_pattern_is_linear():
    name = "x" * 24
    start = time.monotonic()
    for pairs in (4, 40, 100):
        assert not matches("", "%*" * pairs + "!", name)
    assert not matches("", "x%" * 100 + "!", "x" * 1000)
    assert time.monotonic() - start < 0.5

"""Messages for the SORT and THREAD tests (transcripts and the comparison with Dovecot):
subjects with every RFC 5256 2.1 leader, trailer and blob, Date fields in several zones,
missing and broken, address fields with names, comments, groups and no domain, and
reference chains with missing parents, In-Reply-To only, duplicate Message-IDs and loops.
ASCII throughout: for non-ASCII text Dovecot collates by Unicode title case (i;unicode-casemap)
where RFC 5256 gives i;ascii-casemap, which we follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SUBJECTS = [
    "Hello",
    "Re: Hello",
    "RE: re: hello",
    "Fwd: Hello",
    "Hello (fwd)",
    "[fwd: Hello]",
    "[list] Re: Hello",
    "Re: [list] Hello",
    "[blob]",
    "Re: [blob] [two] topic",
    "  spaced    out  ",
    "",
    "Fw: meeting",
    "meeting",
    "Re[2]: meeting",
    "re:meeting (fwd) (FWD)",
    "Zebra",
    "apple",
    "Apple",
    "[a][b]Re: apple",
    "Re:",
    "[Fwd: [Fwd: deep]]",
    "deep",
    "Meeting",
]

DATES = [
    "Mon, 01 Jan 2024 10:00:00 +0000",
    "Mon, 01 Jan 2024 12:00:00 +0200",  # the same instant as the one before
    "Sun, 31 Dec 2023 23:00:00 -0500",
    None,  # no Date: the internal date
    "not a date at all",
    "Tue, 02 Jan 2024 08:30:00 +0100",
    "2 Jan 2024 07:30:00 GMT",
    "Wed, 03 Jan 2024 00:00:00 +1400",
    "Mon, 01 Jan 2024 10:00:00 +0000",
]

FROMS = [
    "Alice <alice@example.org>",
    "bob@example.net",
    '"Doe, John" <john@example.com>',
    "carol@example.org (Carol C)",
    "=?utf-8?q?Zed?= <zed@example.org>",
    "dave",
    "Group: erin@example.org, frank@example.org;",
    "Mallory <MALLORY@example.org>",
    None,
    "alice@example.com",
]
TOS = [
    "Bob <bob@example.net>",
    "undisclosed-recipients:;",
    "a: x@example.org;, zz@example.org",
    "zz@example.org, a: x@example.org;",
    "=?iso-8859-1?q?foo_bar?= <f@example.org>",
    "Carol <carol@example.org>, dave@example.org",
    None,
]
CCS = [None, "cc@example.org", "Able <able@example.org>", "empty:;", "x@example.org (Xavier)"]


def message(i: int) -> bytes:
    """Message i of the corpus: every field cycles through its list at its own pace."""
    lines = []
    sender = FROMS[i % len(FROMS)]
    if sender is not None:
        lines.append(f"From: {sender}")
    to = TOS[(i * 3) % len(TOS)]
    if to is not None:
        lines.append(f"To: {to}")
    cc = CCS[(i * 2) % len(CCS)]
    if cc is not None:
        lines.append(f"Cc: {cc}")
    lines.append(f"Subject: {SUBJECTS[i % len(SUBJECTS)]}")
    date = DATES[(i * 5) % len(DATES)]
    if date is not None:
        lines.append(f"Date: {date}")
    lines.extend(_threading(i))
    body = f"Body line of message {i}.\r\n" * (1 + (i * 7) % 5)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("ascii")


def _threading(i: int) -> list[str]:
    mid = f"<m{i}@example.org>"
    if i == 5:
        mid = "<m3@example.org>"  # a duplicate Message-ID
    fields = [] if i == 7 else [f"Message-ID: {mid}"]  # message 7 has none
    if i in (1, 2):
        fields.append("References: <m0@example.org>")
    elif i == 4:
        fields.append("References: <m0@example.org> <m1@example.org>")
    elif i == 6:
        fields.append("In-Reply-To: <m4@example.org>")  # In-Reply-To only
    elif i == 8:
        fields.append("References: <gone@example.org> <m3@example.org>")  # missing parent
    elif i == 9:
        fields.append("References: <gone@example.org>")  # a sibling under a dummy
    elif i == 10:
        fields.append("References: <m11@example.org>")  # a loop with 11
    elif i == 11:
        fields.append("References: <m10@example.org>")
    elif i == 12:
        fields.append("References: <m12@example.org>")  # itself
    elif i == 13:
        fields.append("References: <x1@example.org> <x2@example.org> <m2@example.org>")
    elif i in (14, 15):
        fields.append("References: <other@example.org>")  # two children of a dummy root
    elif i == 16:
        fields.append("In-Reply-To: <m15@example.org> <m14@example.org>")
    elif i >= 20 and i % 3 == 0:
        fields.append(f"References: <m{i - 3}@example.org>")
    return fields


COUNT = 40
BASE = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def internal_date(i: int) -> datetime:
    """Ties too: every fourth message arrives with the one before it."""
    return BASE + timedelta(minutes=(i - (i % 4 == 3)) * 7 % 50)


def corpus() -> list[tuple[bytes, datetime]]:
    return [(message(i), internal_date(i)) for i in range(COUNT)]

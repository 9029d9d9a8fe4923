"""importimap against a stock Dovecot started here (tests/support/dovecot.py): every folder
copied with bytes, flags, keywords and internal dates, special-use folders mapped to ours, a
second run copying nothing, a message added at the source copied alone on the next run."""

from __future__ import annotations

import imaplib
import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from mailboxes import imapimport, selectors
from tests.mailboxes.conftest import make_raw
from tests.mailboxes.test_archive import state
from tests.support import dovecot
from tests.support.tlsca import make_ca

pytestmark = pytest.mark.skipif(
    not dovecot.available(), reason="dovecot not installed (Debian package dovecot-imapd)"
)

USER, PASSWORD = "olduser", "source-secret"
# RFC 6154 special uses as a stock Dovecot declares them; "Sent Messages" must land in our Sent.
SPECIAL_USE_CONFIG = """\
namespace inbox {
  mailbox "Sent Messages" {
    special_use = \\Sent
  }
  mailbox Trash {
    special_use = \\Trash
  }
}
"""
BIG = make_raw("Big one", body=b"".join(b"line %06d of a big body\r\n" % i for i in range(4000)))

# source folder (Dovecot's "." delimiter, modified UTF-7), raw, flags, internal date
MESSAGES = [
    ("INBOX", make_raw("Plain"), [], datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    (
        "INBOX",
        make_raw("Eight bit", body="Grüße, naïve café\r\n".encode()),
        ["\\Seen", "\\Flagged", "$Forwarded"],
        datetime(2024, 6, 7, 8, 9, 10, tzinfo=UTC),
    ),
    (
        "INBOX",
        make_raw("Keywords"),
        ["\\Answered", "\\Deleted", "Work", "todo"],
        datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
    ),
    ("Sent Messages", BIG, ["\\Seen"], datetime(2026, 2, 28, 12, 0, 0, tzinfo=UTC)),
    (
        "Trash",
        make_raw("Binned"),
        ["\\Seen", "\\Deleted"],
        datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC),
    ),
    (
        "Projects.2026",
        make_raw("Nested"),
        ["\\Draft", "$Label1"],
        datetime(2022, 5, 5, 5, 5, 5, tzinfo=UTC),
    ),
    ("Caf&AOk-", make_raw("Accented folder"), [], datetime(2020, 1, 1, tzinfo=UTC)),
]
# where each lands here
OURS = {
    "INBOX": "INBOX",
    "Sent Messages": "Sent",
    "Trash": "Trash",
    "Projects.2026": "Projects/2026",
    "Caf&AOk-": "Café",
}


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def server(ca):
    with dovecot.running(
        USER, PASSWORD, tls=(ca.cert_path, ca.key_path), extra_config=SPECIAL_USE_CONFIG
    ) as instance:
        yield instance


def append(server, folder: str, raw: bytes, flags: list[str], date: datetime) -> None:
    conn = imaplib.IMAP4("127.0.0.1", server.port)
    try:
        conn.login(USER, PASSWORD)
        conn.create(f'"{folder}"')  # NO when it exists
        typ, data = conn.append(f'"{folder}"', f"({' '.join(flags)})", date, raw)
        assert typ == "OK", data
    finally:
        conn.logout()


def expected() -> dict[str, list[tuple]]:
    result: dict[str, list[tuple]] = {}
    for folder, raw, flags, date in MESSAGES:
        row = (raw, sorted(f.lower() for f in flags), int(date.timestamp()))
        result.setdefault(OURS[folder], []).append(row)
    return {name: sorted(rows) for name, rows in result.items()}


def importimap(url: str, *options: str, password: str = PASSWORD) -> str:
    out = io.StringIO()
    call_command(
        "importimap",
        "bob@example.org",
        "--source",
        url,
        *options,
        stdin=io.StringIO(password + "\n"),
        stdout=out,
    )
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_copies_everything_then_nothing_then_only_the_new(server, ca, make_mailbox):
    for folder, raw, flags, date in MESSAGES:
        append(server, folder, raw, flags, date)
    assert len(BIG) > 64 * 1024
    mailbox = make_mailbox("bob@example.org")
    imaps = f"imaps://{USER}@127.0.0.1:{server.imaps_port}"

    out = importimap(imaps, "--cafile", str(ca.ca_path))
    assert "copied 7 message(s), skipped 0" in out
    have = state(mailbox)
    for name, rows in expected().items():
        assert have[name] == rows, name
    assert selectors.folder_get(mailbox, "Sent Messages") is None  # mapped by special use
    assert selectors.folder_by_special_use(mailbox, "\\Sent").name == "Sent"
    before = state(mailbox)

    # imap:// with STARTTLS this time: the same account, nothing new.
    out = importimap(f"imap://{USER}@127.0.0.1:{server.port}", "--cafile", str(ca.ca_path))
    assert "copied 0 message(s), skipped 7 already present, created 0 folder(s)" in out
    assert state(mailbox) == before

    late = make_raw("Arrived later")
    append(server, "Projects.2026", late, ["\\Seen", "later"], datetime(2026, 3, 1, tzinfo=UTC))
    out = importimap(imaps, "--insecure")
    assert "copied 1 message(s), skipped 7" in out
    after = state(mailbox)
    assert {k: v for k, v in after.items() if k != "Projects/2026"} == {
        k: v for k, v in before.items() if k != "Projects/2026"
    }
    assert sorted(after["Projects/2026"]) == sorted(
        [
            *before["Projects/2026"],
            (late, ["\\seen", "later"], int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())),
        ]
    )


@pytest.mark.django_db(transaction=True)
def test_refuses_unverified_certificate_and_wrong_password(server, ca, make_mailbox):
    make_mailbox("bob@example.org")
    imaps = f"imaps://{USER}@127.0.0.1:{server.imaps_port}"
    with pytest.raises(CommandError, match="CERTIFICATE_VERIFY_FAILED"):
        importimap(imaps)  # the test CA is not in the system's store
    with pytest.raises(CommandError, match="importimap:"):
        importimap(imaps, "--cafile", str(ca.ca_path), password="wrong")


def test_source_url():
    assert imapimport.parse_source("imaps://a%40b.test@mail.example:1993") == imapimport.Source(
        "imaps", "a@b.test", "mail.example", 1993
    )
    assert imapimport.parse_source("imap://u@h").port == 143
    for bad in ("pop3://u@h", "imaps://h", "imaps://u:pw@h"):
        with pytest.raises(ValueError):
            imapimport.parse_source(bad)

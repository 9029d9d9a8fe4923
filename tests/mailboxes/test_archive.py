"""exportmailbox / importmailbox: mbox and Maildir++ round trips keep bytes, flags, keywords,
internal dates and folders; a second import adds nothing; a Dovecot-style Maildir++ imports."""

from __future__ import annotations

import imaplib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from mailboxes import selectors, services
from mailboxes.models import Blob
from tests.mailboxes.conftest import REPO, make_raw

INLINE_MAX = 2000

BIG = make_raw("Big one", body=b"".join(b"line %06d of a big body\r\n" % i for i in range(400)))

MESSAGES = [
    # folder, raw, flags, internal date
    ("INBOX", make_raw("Plain"), [], datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    (
        "INBOX",
        make_raw("Eight bit", body="Grüße, naïve café — ✓\r\n".encode()),
        ["\\Seen", "\\Flagged", "$Forwarded"],
        datetime(2024, 6, 7, 8, 9, 10, tzinfo=UTC),
    ),
    (
        "INBOX",
        make_raw(
            "From lines",
            body=b"Hello\r\nFrom the start of a line\r\n>From quoted once\r\n>>From twice\r\n",
        ),
        ["\\Answered", "\\Deleted", "Work", "todo"],
        datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
    ),
    ("Sent", BIG, ["\\Seen"], datetime(2026, 2, 28, 12, 0, 0, tzinfo=UTC)),
    (
        "Projects/2026.Q1",
        make_raw("Nested", body=b"no final newline"),
        ["\\Draft", "$Label1"],
        datetime(2022, 5, 5, 5, 5, 5, tzinfo=UTC),
    ),
    ("Projects/2026.Q1", make_raw("LF only").replace(b"\r\n", b"\n"), [], None),
]


def state(mailbox) -> dict[str, list[tuple]]:
    """Every folder's messages as (bytes, sorted flags, internal date to the second)."""
    result = {}
    for folder in selectors.folders_of(mailbox):
        rows = []
        for message in selectors.messages_in(folder).select_related("blob"):
            raw = selectors.blob_read(message.blob)
            assert len(raw) == message.size
            date = int(message.internal_date.timestamp())
            rows.append((raw, sorted(f.lower() for f in message.flags), date))
        result[folder.name] = sorted(rows)
    return result


@pytest.fixture
def source(make_mailbox, settings):
    settings.MAILHOST_BLOB_INLINE_MAX = INLINE_MAX
    mailbox = make_mailbox("alice@example.org")
    services.folder_create(mailbox=mailbox, name="Projects/2026.Q1")
    for name, raw, flags, date in MESSAGES:
        folder = selectors.folder_get(mailbox, name)
        services.message_append(folder=folder, raw=raw, flags=flags, internal_date=date)
    big = selectors.messages_in(selectors.folder_get(mailbox, "Sent")).get()
    assert not Blob.name_is_inline(big.blob.name)  # a file blob, not an inline one
    return mailbox


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_export_import_round_trip(source, make_mailbox, tmp_path, fmt, capsys):
    out = tmp_path / "export"
    call_command("exportmailbox", "alice@example.org", str(out), "--format", fmt)
    assert "exported 6 message(s) in 8 folder(s)" in capsys.readouterr().out
    target = make_mailbox("bob@example.org")
    call_command("importmailbox", "bob@example.org", str(out))
    assert "imported 6 message(s), skipped 0" in capsys.readouterr().out
    expected = state(source)
    assert state(target) == expected
    call_command("importmailbox", "bob@example.org", str(out))
    assert "imported 0 message(s), skipped 6" in capsys.readouterr().out
    assert state(target) == expected


def test_maildir_layout_is_byte_exact(source, tmp_path):
    out = tmp_path / "md"
    call_command("exportmailbox", "alice@example.org", str(out), "--format", "maildir")
    sent = os.listdir(out / ".Sent" / "cur")
    assert len(sent) == 1 and sent[0].endswith(":2,S")
    assert (out / ".Sent" / "cur" / sent[0]).read_bytes() == BIG
    assert (
        os.stat(out / ".Sent" / "cur" / sent[0]).st_mtime
        == datetime(2026, 2, 28, 12, tzinfo=UTC).timestamp()
    )
    nested = out / ".Projects.2026~2eQ1"
    assert (nested / "maildirfolder").exists()
    keywords = (out / "dovecot-keywords").read_text().splitlines()
    assert {k.split(" ", 1)[1] for k in keywords} == {"$Forwarded", "todo", "Work"}


def test_mbox_layout_escapes_from_lines(source, tmp_path):
    out = tmp_path / "mb"
    call_command("exportmailbox", "alice@example.org", str(out), "--format", "mbox")
    assert sorted(os.listdir(out)) == [
        "Archive",
        "Drafts",
        "INBOX",
        "Junk",
        "Projects",
        "Projects.sbd",
        "Sent",
        "Trash",
    ]
    inbox = (out / "INBOX").read_bytes()
    assert inbox.startswith(b"From bob@remote.example Thu Jan  2 03:04:05 2025\n")
    assert b"\r\n>From the start of a line\r\n>>From quoted once\r\n>>>From twice\r\n" in inbox
    assert b"\nStatus: O\r\nX-Status: AD\r\nX-Keywords: Work todo\r\nFrom: Bob" in inbox
    assert b"\nStatus: RO\r\nX-Status: F\r\nX-Keywords: $Forwarded\r\n" in inbox
    assert (out / "Projects.sbd" / "2026.Q1").exists()


def test_dovecot_maildir_with_keywords(make_mailbox, tmp_path):
    root = tmp_path / "Maildir"
    for folder in ("", ".Archive.2020", ".Caf&AOk-"):
        for sub in ("cur", "new", "tmp"):
            (root / folder / sub).mkdir(parents=True)
    (root / ".Archive.2020" / "dovecot-keywords").write_text("0 $Junk\n1 Important\n3 later\n")
    files = {
        root / "new" / "1600000000.M1P1.host": make_raw("New one"),
        root / "cur" / "1600000001.M2P1.host,S=120:2,RS": make_raw("Replied"),
        root / ".Archive.2020" / "cur" / "1600000002.M3P1.host:2,Sbd": make_raw("Kw"),
        root / ".Caf&AOk-" / "cur" / "1600000003.M4P1.host:2,FT": make_raw("Accent"),
    }
    for i, (path, raw) in enumerate(files.items()):
        path.write_bytes(raw)
        os.utime(path, (1600000000 + i, 1600000000 + i))
    mailbox = make_mailbox()
    call_command("importmailbox", "alice@example.org", str(root))
    got = state(mailbox)
    assert got["INBOX"] == sorted(
        [
            (make_raw("New one"), [], 1600000000),
            (make_raw("Replied"), ["\\answered", "\\seen"], 1600000001),
        ]
    )
    assert got["Archive/2020"] == [(make_raw("Kw"), ["\\seen", "important", "later"], 1600000002)]
    assert got["Café"] == [(make_raw("Accent"), ["\\deleted", "\\flagged"], 1600000003)]


def test_foreign_mbox_headers_read_in_place(make_mailbox, tmp_path):
    raw = b"From: x@y.example\nStatus: RO\nX-Status: F\nX-Keywords: one, two\nSubject: s\n\nbody\n"
    path = tmp_path / "old.mbox"
    path.write_bytes(b"From x@y.example Mon Mar  4 10:11:12 2019\n" + raw + b"\n")
    mailbox = make_mailbox()
    call_command("importmailbox", "alice@example.org", str(path))
    assert state(mailbox)["INBOX"] == [(raw, ["\\flagged", "\\seen", "one", "two"], 1551694272)]


def test_errors(make_mailbox, tmp_path):
    make_mailbox()
    with pytest.raises(CommandError, match="no mailbox"):
        call_command("importmailbox", "nobody@example.org", str(tmp_path))
    with pytest.raises(CommandError, match="neither a file nor a directory"):
        call_command("importmailbox", "alice@example.org", str(tmp_path / "missing"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"x")
    with pytest.raises(CommandError, match="not empty"):
        call_command(
            "exportmailbox", "alice@example.org", str(tmp_path / "full"), "--format", "mbox"
        )


def verifystore(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "verifystore"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_verifystore(source, child_env, blob_dir):
    result = verifystore(child_env)
    assert (result.returncode, result.stdout) == (0, "store ok\n"), result.stderr
    big = selectors.messages_in(selectors.folder_get(source, "Sent")).get()
    path = selectors.blob_path(big.blob)
    with open(path, "r+b") as fh:
        fh.truncate(100)
    small = selectors.messages_in(selectors.folder_get(source, "INBOX")).first()
    Blob.objects.filter(pk=small.blob_id).update(data=b"short")
    result = verifystore(child_env)
    assert result.returncode == 1
    assert result.stdout.splitlines() == sorted(
        [
            f"blob {small.blob_id} {small.blob.name}: size 5, expected {small.size}",
            f"blob {big.blob_id} {big.blob.name}: size 100, expected {big.size}",
        ],
        key=lambda line: int(line.split()[1]),
    )
    os.unlink(path)
    Blob.objects.filter(pk=small.blob_id).update(data=None)
    result = verifystore(child_env)
    assert result.returncode == 1
    assert f"blob {big.blob_id} {big.blob.name}: missing (size {big.size})" in result.stdout
    assert f"blob {small.blob_id} {small.blob.name}: missing (size {small.size})" in result.stdout
    assert "2 problem(s) found" in result.stderr


def imap_state(port: int, user: str) -> dict[str, list[tuple]]:
    """Every folder's messages as an IMAP client sees them: bytes, flags, INTERNALDATE."""
    result = {}
    with imaplib.IMAP4("127.0.0.1", port) as conn:
        conn.login(user, "secret")
        _, listing = conn.list()
        names = [line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in listing]
        for name in names:
            conn.select(f'"{name}"', readonly=True)
            _, data = conn.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            rows = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                flags = sorted(f.decode().lower() for f in imaplib.ParseFlags(item[0]))
                flags = [f for f in flags if f != "\\recent"]
                date = imaplib.Internaldate2tuple(item[0])
                rows.append((item[1], flags, time.mktime(date)))
            result[name] = sorted(rows)
    return result


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_round_trip_seen_through_imap(source, make_mailbox, live_settings, tmp_path, fmt):
    from mailhost import runner
    from tests.support.servers import running

    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    call_command("exportmailbox", "alice@example.org", str(tmp_path / "x"), "--format", fmt)
    make_mailbox("bob@example.org")
    call_command("importmailbox", "bob@example.org", str(tmp_path / "x"))
    with running(runner.IMAP) as ports:
        before = imap_state(ports["imap"], "alice@example.org")
        after = imap_state(ports["imap"], "bob@example.org")
    assert sum(len(rows) for rows in before.values()) == len(MESSAGES)
    assert BIG in [raw for raw, _, _ in before["Sent"]]
    assert after == before

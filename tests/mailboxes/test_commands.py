"""adddomain, addmailbox, addalias: run as real processes, so exit status and output are real."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailboxes import services
from mailboxes.models import Alias, Domain, Folder, Mailbox
from tests.mailboxes.conftest import REPO

pytestmark = pytest.mark.django_db(transaction=True)


def manage(env, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        input=stdin,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot() -> tuple[int, int, int, int]:
    return (
        Domain.objects.count(),
        Mailbox.objects.count(),
        Folder.objects.count(),
        Alias.objects.count(),
    )


def test_provisioning_success(child_env, settings):
    # The child hashes with the real default (PBKDF2); let this process check such a hash.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    result = manage(child_env, "adddomain", "Bücher.example")
    assert (result.returncode, result.stdout.strip()) == (0, "domain xn--bcher-kva.example created")
    result = manage(
        child_env,
        "addmailbox",
        "Jörg@bücher.example",
        "--password-stdin",
        "--quota",
        "5000",
        stdin="a pass word\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mailbox Jörg@bücher.example created"
    mailbox = Mailbox.objects.get()
    assert mailbox.quota == 5000
    assert mailbox.quota_messages == 0  # MAILHOST_DEFAULT_QUOTA_MESSAGES
    assert Folder.objects.filter(mailbox=mailbox).count() == 6
    assert services.mailbox_authenticate(address="jörg@bücher.example", password="a pass word")
    result = manage(
        child_env, "addalias", "info@bücher.example", "jörg@bücher.example", "x@remote.example"
    )
    assert result.returncode == 0, result.stderr
    assert Alias.objects.get().destination_list == [
        "jörg@xn--bcher-kva.example",
        "x@remote.example",
    ]
    result = manage(child_env, "addalias", "*@bücher.example", "jörg@bücher.example")
    assert result.returncode == 0, result.stderr
    assert Alias.objects.filter(local_key="").exists()


def test_addmailbox_message_quota(child_env, make_domain):
    make_domain("example.org")
    result = manage(
        child_env,
        "addmailbox",
        "bob@example.org",
        "--password-stdin",
        "--quota-messages",
        "1000",
        stdin="a pass word\n",
    )
    assert result.returncode == 0, result.stderr
    result = manage(
        {**child_env, "MAILHOST_DEFAULT_QUOTA_MESSAGES": "20"},
        "addmailbox",
        "carol@example.org",
        "--password-stdin",
        stdin="a pass word\n",
    )
    assert result.returncode == 0, result.stderr
    limits = dict(Mailbox.objects.values_list("local_part", "quota_messages"))
    assert limits == {"bob": 1000, "carol": 20}


BAD_INPUTS = [
    (("adddomain", "bad domain"), "", "invalid domain"),
    (("adddomain", "EXAMPLE.org"), "", "exists"),
    (("addmailbox", "not-an-address", "--password-stdin"), "pw\n", "not an address"),
    (("addmailbox", "a b@example.org", "--password-stdin"), "pw\n", "invalid local part"),
    (("addmailbox", "x@elsewhere.example", "--password-stdin"), "pw\n", "not hosted"),
    (("addmailbox", "Alice@example.org", "--password-stdin"), "pw\n", "exists"),
    (("addmailbox", "info@example.org", "--password-stdin"), "pw\n", "is an alias"),
    (("addmailbox", "new@example.org", "--password-stdin"), "", "no password"),
    (("addmailbox", "new@example.org", "--password-stdin"), "\n", "no password"),
    (("addmailbox", "new@example.org"), "pw\n", "--password-stdin"),
    (("addmailbox", "new@example.org", "--password-stdin", "--quota", "-1"), "pw\n", "quota"),
    (
        ("addmailbox", "new@example.org", "--password-stdin", "--quota-messages", "-1"),
        "pw\n",
        "--quota-messages",
    ),
    (("addalias", "bad address@example.org", "alice@example.org"), "", "invalid local part"),
    (("addalias", "x@elsewhere.example", "alice@example.org"), "", "not hosted"),
    (("addalias", "INFO@example.org", "alice@example.org"), "", "exists"),
    (("addalias", "alice@example.org", "x@remote.example"), "", "is a mailbox"),
    (("addalias", "new@example.org", "not-an-address"), "", "not an address"),
]


def test_bad_input_is_one_line_exit_1_and_writes_nothing(child_env, make_mailbox):
    make_mailbox("alice@example.org")
    services.alias_create(address="info@example.org", destinations=["alice@example.org"])
    before = snapshot()
    # Separate processes (real exit statuses), run side by side to keep the test quick.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda case: manage(child_env, *case[0], stdin=case[1]), BAD_INPUTS)
        )
    for (args, _stdin, text), result in zip(BAD_INPUTS, results):
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("CommandError: "), (args, lines)
        assert text in lines[0], (args, lines)
        assert result.stdout == "", args
    assert snapshot() == before

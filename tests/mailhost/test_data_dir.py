"""The data dir (SQLite with password hashes and mail, DKIM and TLS keys, the secret key,
blobs) is private: 0700 directories, 0600 files, whatever the umask of the shell."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh process on a fresh data dir: writes through the services (a message stored
# in a blob file, the SQLite file and its WAL), makes the self-signed certificate, then lists
# the mode of every entry while the database connection is still open (SQLite removes -wal and
# -shm when the last connection closes).
WRITE_AND_WALK = """
import json, os, stat
from django.conf import settings
from django.db import connection
from mailboxes import services
from mailhost.tls import server_context
services.domain_create(name="example.org")
services.mailbox_create(address="alice@example.org", password="a long password 1")
raw = b"From: b@example.net\\r\\nSubject: hi\\r\\n\\r\\n" + b"x" * 100 + b"\\r\\n"
services.message_deliver(raw=raw, recipients=["alice@example.org"])
server_context()
modes = {}
for root, dirs, files in os.walk(settings.DATA_DIR):
    for name in dirs + files:
        path = os.path.join(root, name)
        modes[os.path.relpath(path, settings.DATA_DIR)] = stat.S_IMODE(os.lstat(path).st_mode)
modes["."] = stat.S_IMODE(os.stat(settings.DATA_DIR).st_mode)
print(json.dumps(modes))
"""


def manage(data_dir: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "MAILHOST_SECRET_KEY", "DJANGO_SECRET_KEY"}
    }
    env.update(
        MAILHOST_DATA_DIR=str(data_dir),
        MAILHOST_HOSTNAME="mx.test.example",
        MAILHOST_BLOB_INLINE_MAX="0",  # the message goes to a blob file
    )
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=lambda: os.umask(umask),  # an operator's usual shell
    )
    assert result.returncode == 0, result.stderr
    return result


def test_a_fresh_data_dir_and_everything_written_in_it_are_private(tmp_path):
    data_dir = tmp_path / "var"
    manage(data_dir, "migrate", "--verbosity", "0")
    modes = json.loads(manage(data_dir, "shell", "-c", WRITE_AND_WALK).stdout.splitlines()[-1])
    # What must be there, so the walk saw the files that matter.
    for name in (
        "mailhost.sqlite3",
        "mailhost.sqlite3-wal",
        "mailhost.sqlite3-shm",
        "secret_key",
        "tls/cert.pem",
        "tls/key.pem",
        "blobs",
    ):
        assert name in modes, sorted(modes)
    assert any(name.startswith("blobs/") and not (data_dir / name).is_dir() for name in modes)
    assert modes["."] == 0o700
    for name, mode in modes.items():
        assert mode & 0o077 == 0, (name, oct(mode))
        if (data_dir / name).is_file():
            assert mode == 0o600, (name, oct(mode))


def test_an_existing_data_dir_made_readable_is_made_private_at_start_up(tmp_path):
    data_dir = tmp_path / "var"
    manage(data_dir, "migrate", "--verbosity", "0")
    manage(data_dir, "shell", "-c", "from mailhost.tls import server_context; server_context()")
    # As an install from before the fix left it.
    (data_dir / "blobs").mkdir(exist_ok=True)
    exposed = [
        data_dir,
        data_dir / "mailhost.sqlite3",
        data_dir / "secret_key",
        data_dir / "tls",
        data_dir / "tls" / "key.pem",
        data_dir / "blobs",
    ]
    for path in exposed:
        path.chmod(0o755 if path.is_dir() else 0o644)
    manage(data_dir, "check")
    for path in exposed:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))

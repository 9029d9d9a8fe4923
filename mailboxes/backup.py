"""Backup and restore of a whole server: the database, then the blob store (`manage.py backup`,
`manage.py restore`).

Order matters. A blob is written and synced before the rows naming it commit
(mailboxes.storage, services.message_deliver), so once the database copy is taken every row in
it names a blob whose file is already on disk, and the blob copy that starts afterwards finds
it. Copying the blobs first would miss files of messages committed between the two copies.
Blobs stored inline (`inline:` names) are in the database copy itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

from django.core.files.storage import FileSystemStorage, storages
from django.db import connection

# Opens read-only and fsyncs: for a file as for a directory.
from mailboxes.storage import _fsync_directory as _fsync_path

SQLITE_NAME = "db.sqlite3"
PG_DUMP_NAME = "db.dump"
BLOBS_NAME = "blobs"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


def backup_write(target: Path) -> list[str]:
    """Copy the database, then the blob files, into `target` (made if absent; must be empty).
    Returns the lines to print."""
    blob_dir = _blob_directory()
    target.mkdir(parents=True, exist_ok=True)
    if any(target.iterdir()):
        raise BackupError(f"{target} is not empty")
    # 1. The database (see the module docstring for why it comes first).
    if connection.vendor == "sqlite":
        _sqlite_copy(connection.settings_dict["NAME"], target / SQLITE_NAME)
        database = SQLITE_NAME
    elif connection.vendor == "postgresql":
        _run(["pg_dump", "--format=custom", "--file", str(target / PG_DUMP_NAME)])
        database = PG_DUMP_NAME
    else:
        raise BackupError(f"no backup for the {connection.vendor} database")
    # 2. Then the blob files.
    copied = _copy_files(blob_dir, target / BLOBS_NAME)
    _fsync_path(target)
    return [f"database {target / database}", f"blobs {copied} file(s) into {target / BLOBS_NAME}"]


def backup_restore(source: Path) -> list[str]:
    """Put a backup from `backup_write` back into the configured database and blob store.
    The server must be stopped. Returns the lines to print."""
    blob_dir = _blob_directory()
    if connection.vendor == "sqlite":
        dump = source / SQLITE_NAME
        if not dump.is_file():
            raise BackupError(f"{dump} not found (a backup taken on PostgreSQL?)")
        connection.close()
        _sqlite_copy(str(dump), Path(connection.settings_dict["NAME"]))
    elif connection.vendor == "postgresql":
        dump = source / PG_DUMP_NAME
        if not dump.is_file():
            raise BackupError(f"{dump} not found (a backup taken on SQLite?)")
        connection.close()
        name = str(connection.settings_dict["NAME"])
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", name, str(dump)])
    else:
        raise BackupError(f"no restore for the {connection.vendor} database")
    copied = _copy_files(source / BLOBS_NAME, blob_dir) if (source / BLOBS_NAME).is_dir() else 0
    return [f"database from {dump}", f"blobs {copied} file(s) into {blob_dir}"]


def _blob_directory() -> Path:
    storage = storages["blobs"]
    if not isinstance(storage, FileSystemStorage):
        raise BackupError(
            "the blob store is not a directory (S3?): back up the database with this command's "
            "method by hand and the bucket with its own tools (versioning, aws s3 sync)"
        )
    return Path(storage.location)


def _sqlite_copy(source: str, destination: Path) -> None:
    """SQLite's online backup API: a consistent copy while others write (never `cp`)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(destination)) as dst,
    ):
        src.backup(dst)
    _fsync_path(destination)


def _run(argv: list[str]) -> None:
    """pg_dump / pg_restore with the connection from DATABASES (libpq's PG* variables)."""
    settings = connection.settings_dict
    env = dict(os.environ)
    for key, variable in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
        ("NAME", "PGDATABASE"),
    ):
        if settings.get(key):
            env[variable] = str(settings[key])
    if shutil.which(argv[0]) is None:
        raise BackupError(f"{argv[0]} not found (Debian: postgresql-client)")
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{argv[0]} failed: {result.stderr.strip()[-2000:]}")


def _files(root: Path) -> Iterator[Path]:
    for directory, _dirs, names in os.walk(root):
        for name in names:
            if not name.startswith(".tmp-"):  # a blob being written, not yet renamed in
                yield Path(directory) / name


def _copy_files(source: Path, destination: Path) -> int:
    """Copy every blob file under `source` to the same relative path under `destination`,
    synced; a file already there with the same size is kept. Returns the number copied."""
    copied = 0
    for path in _files(source):
        target = destination / path.relative_to(source)
        with contextlib.suppress(FileNotFoundError):
            if target.stat().st_size == path.stat().st_size:
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, target)
        except FileNotFoundError:  # removed meanwhile (collectblobs): no row names it
            continue
        _fsync_path(target)
        copied += 1
    for directory, _dirs, _names in os.walk(destination):
        _fsync_path(Path(directory))
    return copied

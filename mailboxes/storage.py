"""Blob storage: Django's storage API, with a filesystem backend that syncs before it returns.

A blob is written to a temporary file beside its final name, fsync'd, renamed into place, and
the directory is fsync'd (and a directory made for it, into its parent), so that once `save`
returns the bytes survive a crash. Object storage (django-storages' S3 backend) gives the same
guarantee on its own and plugs in via STORAGES.
"""

from __future__ import annotations

import errno
import os

from django.core.files.storage import FileSystemStorage


class DurableFileSystemStorage(FileSystemStorage):
    def _save(self, name: str, content) -> str:  # noqa: ANN001 - Django's signature
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        _make_directories(directory)
        tmp_path = os.path.join(directory, f".tmp-{os.path.basename(full_path)}")
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            chunks = content.chunks() if hasattr(content, "chunks") else [content.read()]
            for chunk in chunks:
                view = memoryview(chunk)
                while view:  # os.write may write less than asked (signals, huge buffers)
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp_path)
            raise
        os.close(fd)
        os.replace(tmp_path, full_path)
        _fsync_directory(directory)
        return name

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        # Blob names are random (uuid4); never rename, never overwrite silently.
        return name


def out_of_space(exc: BaseException) -> bool:
    """The disk is full (RFC 3463 4.3.1): ENOSPC/EDQUOT from a blob write, or the database's
    own "disk full" (SQLite SQLITE_FULL, PostgreSQL 53100), anywhere in the exception chain."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(current).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        if getattr(current, "sqlstate", None) == "53100":
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_directories(path: str) -> None:
    """os.makedirs, and each directory it creates synced into its parent: the file's own
    directory sync makes its entry durable, not the entry of a directory made for it."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _make_directories(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:  # made meanwhile by another writer: sync its entry all the same
        pass
    _fsync_directory(parent or ".")

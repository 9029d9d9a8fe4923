"""Blobs as objects in S3-compatible storage (django-storages' S3 backend, boto3).

Imported only when MAILHOST_S3_BUCKET is set. The durability promise of the filesystem
backend holds: `save` returns once the PUT succeeded and a HEAD shows the object with all its
bytes, so a row naming it is committed only after the object is there. Errors of the object
store (unreachable, refused, throttled past the retries) come out as OSError, like a disk's,
so the callers that survive a failed file delete survive a failed object delete.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from datetime import datetime

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

# Connection refused or a dead endpoint fails in seconds, not boto3's default minute: DATA
# is waiting for the answer (451 then, the client retries later).
CLIENT_CONFIG = {
    "connect_timeout": 5,
    "read_timeout": 60,
    "retries": {"max_attempts": 3, "mode": "standard"},
}


class ObjectStoreError(OSError):
    """The object store failed (a 4xx/5xx answer, or no answer at all)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _BodyChunks:
    """A GET's body a chunk at a time; close() releases the connection, read to the end or
    not."""

    def __init__(self, name: str, body, chunk_size: int) -> None:  # noqa: ANN001
        self.name, self.body, self.chunk_size = name, body, chunk_size

    def __iter__(self) -> _BodyChunks:
        return self

    def __next__(self) -> bytes:
        if self.body is None:
            raise StopIteration
        try:
            chunk = self.body.read(self.chunk_size)
        except BotoCoreError as exc:
            self.close()
            raise DurableS3Storage._read_error(self.name, exc) from exc
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


_READ_CLIENT_LOCK = threading.Lock()


class DurableS3Storage(S3Storage):
    _read_client = None  # made on first use, then shared by the reads of every thread

    def __init__(self, **settings) -> None:  # noqa: ANN003 - django-storages' options
        if "client_config" not in settings:
            addressing = "path" if settings.get("endpoint_url") else "auto"
            settings["client_config"] = Config(
                s3={"addressing_style": addressing}, signature_version="s3v4", **CLIENT_CONFIG
            )
        settings.setdefault("file_overwrite", True)  # blob names are random (uuid4)
        settings.setdefault("default_acl", None)
        super().__init__(**settings)

    def _save(self, name: str, content) -> str:  # noqa: ANN001 - Django's signature
        size = content.size
        try:
            name = super()._save(name, content)
            head = self.connection.meta.client.head_object(
                Bucket=self.bucket_name, Key=self._normalize_name(clean_name(name))
            )
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(
                errno.EIO, f"object store: could not write {name}: {exc}"
            ) from exc
        if head.get("ContentLength") != size:
            raise ObjectStoreError(
                errno.EIO,
                f"object store: {name} holds {head.get('ContentLength')} bytes, wrote {size}",
            )
        return name

    def delete(self, name: str) -> None:
        try:
            super().delete(name)
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(
                errno.EIO, f"object store: could not delete {name}: {exc}"
            ) from exc

    @property
    def read_client(self):  # noqa: ANN201 - a botocore S3 client
        """One client for the reads of every thread. Clients are thread-safe; django-storages
        makes a boto3 resource per thread, and each costs about 12 MB of model data: a FETCH
        served by a new worker thread made one."""
        client = self._read_client
        if client is None:
            with _READ_CLIENT_LOCK:
                if self._read_client is None:
                    self._read_client = self.connection.meta.client
                client = self._read_client
        return client

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_read_client", None)
        return state

    def read_range(self, name: str, offset: int, length: int = -1) -> bytes:
        """`length` bytes from `offset` (-1: to the end) with one GET, ranged unless the whole
        object is asked for; fewer at its end, none past it. FileNotFoundError when it is gone."""
        body = self._get_body(name, offset, length)
        if body is None:
            return b""
        try:
            return body.read()
        except BotoCoreError as exc:
            raise self._read_error(name, exc) from exc
        finally:
            body.close()

    def open_range(self, name: str, offset: int, length: int, chunk_size: int) -> Iterator[bytes]:
        """The bytes of read_range in chunks of at most chunk_size, from one GET whose body is
        read as it is consumed: the whole range is never in memory. The GET is made now
        (FileNotFoundError now when the object is gone); the iterator holds its connection
        until exhausted or closed."""
        return _BodyChunks(name, self._get_body(name, offset, length), chunk_size)

    def _get_body(self, name: str, offset: int, length: int):  # noqa: ANN202 - botocore's body
        """The streaming body of a GET of that range, or None for an empty range."""
        if length == 0:
            return None
        args = {"Bucket": self.bucket_name, "Key": self._normalize_name(clean_name(name))}
        if length > 0:
            args["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset > 0:
            args["Range"] = f"bytes={offset}-"
        try:
            return self.read_client.get_object(**args)["Body"]
        except ClientError as exc:
            if _code(exc) == "InvalidRange":
                return None  # past the end, or a range of an empty object
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                raise FileNotFoundError(name) from exc
            raise self._read_error(name, exc) from exc
        except BotoCoreError as exc:
            raise self._read_error(name, exc) from exc

    @staticmethod
    def _read_error(name: str, exc: Exception) -> ObjectStoreError:
        return ObjectStoreError(errno.EIO, f"object store: could not read {name}: {exc}")

    def iter_objects(self) -> Iterator[tuple[str, datetime]]:
        """(blob name, last modified) of every object under the blob prefix, one listing page
        (1,000 objects) at a time: memory stays flat however many there are."""
        root = self._normalize_name("")
        prefix = root.rstrip("/") + "/" if root else ""
        paginator = self.read_client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket_name, Prefix=prefix):
                for item in page.get("Contents", ()):
                    yield item["Key"][len(prefix) :], item["LastModified"]
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(errno.EIO, f"object store: could not list: {exc}") from exc

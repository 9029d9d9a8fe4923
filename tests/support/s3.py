"""A local S3 API server for the object-storage tests: moto's server mode (PyPI `moto[server]`)
in its own process on 127.0.0.23, and the settings that point the blob storage at it.

    server = S3Server(); server.start(); ...; server.stop(); server.start()  # same port

Stopping it makes the endpoint refuse connections (the object store unreachable); starting it
again brings back an empty store on the same address (the bucket is made again).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import boto3
from botocore.config import Config

from bench.mailhost_process import free_port as _free_port

HOST = "127.0.0.23"
BUCKET = "mailhost-blobs"
KEY_ID = "test-key-id"
SECRET = "test-secret-key"
REGION = "us-east-1"


class S3Server:
    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def keys(self) -> dict[str, int]:
        """Every object in the bucket: key -> size."""
        listing = self.client().list_objects_v2(Bucket=BUCKET)
        return {item["Key"]: item["Size"] for item in listing.get("Contents", ())}

    def storage_settings(self) -> dict:
        """STORAGES["blobs"] as mailhost/settings.py makes it with MAILHOST_S3_BUCKET set."""
        return {
            "BACKEND": "mailboxes.s3storage.DurableS3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": self.endpoint_url,
                "region_name": REGION,
                "access_key": KEY_ID,
                "secret_key": SECRET,
                "location": "blobs",
            },
        }


class GetLog:
    """Every GET the blob storage makes, from any thread (its clients are made
    from a session this hooks): its Range header, and the body bytes the store answered with
    (Content-Length; 0 for a refused range)."""

    def __init__(self, storage) -> None:  # noqa: ANN001 - the blobs' DurableS3Storage
        self.ranges: list[str | None] = []
        self.sent: list[int] = []
        make_session = storage._create_session

        def hooked_session():  # noqa: ANN202
            session = make_session()
            session.events.register("before-parameter-build.s3.GetObject", self._request)
            session.events.register("after-call.s3.GetObject", self._response)
            return session

        storage._create_session = hooked_session
        storage._connections = threading.local()  # clients made from now on are hooked
        storage._read_client = None  # the shared one too

    def _request(self, params, **_) -> None:  # noqa: ANN001
        self.ranges.append(params.get("Range"))

    def _response(self, parsed, **_) -> None:  # noqa: ANN001
        self.sent.append(parsed.get("ContentLength", 0))

    def clear(self) -> None:
        self.ranges.clear()
        self.sent.clear()


# Fixtures (import them into a test module: `from tests.support.s3 import s3_blobs, s3_server`).
import pytest  # noqa: E402 - fixtures below the helpers they use


@pytest.fixture(scope="module")
def s3_server():
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_blobs(settings, blob_dir, s3_server):
    """Blobs in the local S3 server's bucket (emptied first), as with MAILHOST_S3_BUCKET set."""
    if s3_server.process is None:
        s3_server.start()
    client = s3_server.client()
    for key in s3_server.keys():
        client.delete_object(Bucket=BUCKET, Key=key)
    settings.STORAGES = {**settings.STORAGES, "blobs": s3_server.storage_settings()}
    return s3_server

"""Blobs in S3-compatible object storage (MAILHOST_S3_BUCKET), against moto's S3 server run
as its own process on 127.0.0.23: delivery over SMTP read back over IMAP, the object store
going away during DATA and coming back, garbage collection by listing and age."""

from __future__ import annotations

import imaplib
import smtplib
import time

import pytest
from django.core.files.storage import storages

from mailboxes import selectors, services
from mailboxes.models import Blob, Message
from mailhost import runner
from tests.support.s3 import GetLog
from tests.support.servers import running


def message(subject: str, body_bytes: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    body = line * (body_bytes // len(line) + 1)
    return (
        f"From: bob@remote.example\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@remote.example>\r\n\r\n"
    ).encode() + body


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="mx.remote.example") as smtp:
        smtp.sendmail("bob@remote.example", ["alice@example.org"], raw)


@pytest.mark.django_db(transaction=True)
def test_smtp_delivery_puts_large_blobs_in_s3_and_imap_reads_them_back(
    live_settings, s3_blobs, make_mailbox
):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    make_mailbox("alice@example.org", "secret")
    large = message("large one", 300_000)  # past MAILHOST_BLOB_INLINE_MAX (64 KiB)
    small = message("small one", 2_000)
    with running(runner.SMTP, runner.IMAP) as ports:
        send(ports["smtp"], large)
        send(ports["smtp"], small)

        blobs = {m.subject: m.blob for m in Message.objects.select_related("blob")}
        assert not Blob.name_is_inline(blobs["large one"].name)
        assert Blob.name_is_inline(blobs["small one"].name)  # inline blobs stay in the rows
        objects = s3_blobs.keys()
        stored_large = selectors.blob_read(blobs["large one"])
        assert objects == {f"blobs/{blobs['large one'].name}": len(stored_large)}
        assert stored_large.endswith(large)  # our Received/Return-Path lines come first

        imap = imaplib.IMAP4("127.0.0.1", ports["imap"])
        imap.login("alice@example.org", "secret")
        imap.select("INBOX")
        typ, data = imap.uid("FETCH", "1", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == stored_large
        typ, data = imap.uid("FETCH", "1", "(BODY.PEEK[]<100.50>)")
        assert typ == "OK" and data[0][1] == stored_large[100:150]
        typ, data = imap.uid("FETCH", "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: large one" in data[0][1]
        typ, data = imap.uid("FETCH", "2", "(BODY.PEEK[TEXT])")
        assert typ == "OK" and small.split(b"\r\n\r\n", 1)[1] == data[0][1]
        imap.logout()


@pytest.mark.django_db(transaction=True)
def test_object_store_unreachable_during_data_is_451_with_nothing_stored_then_it_comes_back(
    live_settings, s3_blobs, make_mailbox
):
    make_mailbox("alice@example.org", "secret")
    with running(runner.SMTP) as ports:
        s3_blobs.stop()  # connections to the endpoint are refused from here on
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(ports["smtp"], message("while away", 200_000))
        assert refused.value.smtp_code == 451
        assert refused.value.smtp_error.startswith(b"4.3.0")
        assert time.monotonic() - started < 30  # a short connect timeout, not boto3's minute
        assert Message.objects.count() == 0
        assert Blob.objects.count() == 0

        s3_blobs.start()  # back, empty
        send(ports["smtp"], message("after return", 200_000))
        (row,) = Message.objects.select_related("blob")
        assert row.subject == "after return"
        assert s3_blobs.keys() == {f"blobs/{row.blob.name}": row.size}
    # And a message that fits its row never needed the object store.
    assert Blob.objects.count() == 1


@pytest.mark.django_db
def test_garbage_collection_lists_the_prefix_and_removes_only_old_unreferenced_objects(
    s3_blobs, make_mailbox, settings
):
    settings.MAILHOST_BLOB_INLINE_MAX = 0
    mailbox = make_mailbox("alice@example.org")
    old_orphan = services.blob_write(b"a write whose rows never committed\r\n")
    referenced = services.message_deliver(raw=message("kept", 100), recipients=[mailbox.address])
    assert referenced[0].status == "delivered"
    time.sleep(3.5)  # S3 listings give whole seconds: the orphan is > 2 s old below
    young_orphan = services.blob_write(b"a write in flight\r\n")
    outside = "not-a-blob/" + old_orphan  # objects outside the blob prefix are not ours
    s3_blobs.client().put_object(Bucket="mailhost-blobs", Key=outside, Body=b"x")

    rows, objects = services.blob_collect_garbage(orphan_age=2)
    assert (rows, objects) == (0, 1)
    kept = s3_blobs.keys()
    kept_name = Message.objects.get().blob.name
    assert set(kept) == {f"blobs/{kept_name}", f"blobs/{young_orphan}", outside}
    assert selectors.blob_read(kept_name).endswith(message("kept", 100))


@pytest.mark.django_db
def test_a_prefix_read_is_one_ranged_get_and_a_released_blob_reads_as_missing(
    s3_blobs, settings, django_capture_on_commit_callbacks
):
    settings.MAILHOST_BLOB_INLINE_MAX = 0
    raw = bytes(range(256)) * 4000  # about 1 MB
    blob = services.blob_store(raw)
    ranges = []
    client = storages["blobs"].connection.meta.client
    client.meta.events.register(
        "before-parameter-build.s3.GetObject",
        lambda params, **_: ranges.append(params.get("Range")),
    )
    assert selectors.blob_read(blob, limit=1000) == raw[:1000]
    assert selectors.blob_read(blob) == raw
    assert ranges == ["bytes=0-999", None]
    assert selectors.blob_read_many([blob.name]) == {blob.name: raw}

    with django_capture_on_commit_callbacks(execute=True):
        assert services.blob_release([blob.id]) == 1
    assert s3_blobs.keys() == {}
    with pytest.raises(FileNotFoundError):
        selectors.blob_read(blob.name)
    assert selectors.blob_read_many([blob.name]) == {}


@pytest.mark.django_db
def test_a_range_is_one_ranged_get_of_those_bytes_and_a_stream_one_get_read_in_chunks(
    s3_blobs, settings
):
    settings.MAILHOST_BLOB_INLINE_MAX = 0
    raw = bytes(range(256)) * 8000  # about 2 MB
    blob = services.blob_store(raw)
    gets = GetLog(storages["blobs"])
    assert (
        selectors.blob_read_range(blob, offset=1_500_000, length=1000) == raw[1_500_000:1_501_000]
    )
    assert selectors.blob_read_range(blob.name, offset=len(raw) - 10, length=100) == raw[-10:]
    assert selectors.blob_read_range(blob.name, offset=len(raw) + 1, length=100) == b""
    assert gets.ranges == [
        "bytes=1500000-1500999",
        f"bytes={len(raw) - 10}-{len(raw) + 89}",
        f"bytes={len(raw) + 1}-{len(raw) + 100}",
    ]
    assert gets.sent == [1000, 10, 0]  # the third is refused (416): nothing sent

    gets.clear()
    stream = selectors.blob_stream(blob, offset=1000, length=len(raw) - 2000, chunk_size=65536)
    chunks = list(stream)
    assert b"".join(chunks) == raw[1000:-1000]
    assert max(len(c) for c in chunks) == 65536
    assert gets.ranges == [f"bytes=1000-{len(raw) - 1001}"] and gets.sent == [len(raw) - 2000]
    assert b"".join(selectors.blob_stream(blob.name)) == raw and gets.ranges[-1] is None
    with pytest.raises(FileNotFoundError):
        selectors.blob_stream("ab/cd/not-there")


@pytest.mark.django_db
def test_verifystore_reports_an_object_gone_from_the_bucket(s3_blobs, settings):
    settings.MAILHOST_BLOB_INLINE_MAX = 0
    kept = services.blob_store(b"still here\r\n")
    lost = services.blob_store(b"deleted behind our back\r\n")
    assert list(selectors.store_problems()) == []
    s3_blobs.client().delete_object(Bucket="mailhost-blobs", Key=f"blobs/{lost.name}")
    assert list(selectors.store_problems()) == [
        f"blob {lost.id} {lost.name}: missing (size {lost.size})"
    ]
    assert selectors.blob_read(kept) == b"still here\r\n"

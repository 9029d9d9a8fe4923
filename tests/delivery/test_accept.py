"""The acceptance service shared by the MTA, the MSA and the webmail."""

from __future__ import annotations

import re

import pytest

from delivery import accept
from delivery.accept import (
    ClientInfo,
    EnvelopeRecipient,
    NoRecipients,
    Outcome,
    Prepared,
    SenderNotAllowed,
    SpoolOptions,
    file_and_spool,
    message_accept,
    message_prepare,
    message_submit,
    recipient_verdict,
)
from delivery.models import OutboundMessage
from mailboxes.exceptions import InvalidAddress, StorageError
from mailboxes.models import Blob, Folder, Mailbox, Message
from mailboxes.selectors import blob_read
from mailboxes.services import alias_create

pytestmark = pytest.mark.django_db

RAW = b"From: alice@example.org\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.fixture
def people(make_mailbox):
    return {n: make_mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol")}


def files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_received_header_follows_rfc5321_4_4(settings):
    settings.MAILHOST_HOSTNAME = "mx.test.example"
    header = accept.received_header(
        client=ClientInfo(
            helo="client.example.net",
            ip="192.0.2.7",
            protocol="ESMTPS",
            tls="TLSv1.3 with cipher TLS_AES_256_GCM_SHA384",
        ),
        queue_id="ABC123",
        recipients=["bob@example.org"],
    ).decode()
    assert re.fullmatch(
        r"Received: from client\.example\.net \(\[192\.0\.2\.7\]\)\r\n"
        r"\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384\)\r\n"
        r"\tby mx\.test\.example \(Mailhost\) with ESMTPS id ABC123\r\n"
        r"\tfor <bob@example\.org>; \w{3}, \d{2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n",
        header,
    ), header
    several = accept.received_header(
        client=ClientInfo(helo="bad\x00 helo", ip="2001:db8::1"),
        queue_id="X",
        recipients=["a@example.org", "b@example.org"],
    ).decode()
    assert several.startswith("Received: from badhelo ([IPv6:2001:db8::1])\r\n")
    assert "for <" not in several  # several recipients are not disclosed to each other


def test_the_trace_date_is_formatted_once_a_second(monkeypatch):
    # Every message within a second gets the same date text: formatted once, not each time.
    import datetime
    from email.utils import format_datetime

    start = datetime.datetime(2026, 3, 1, 12, 0, 5, 100, tzinfo=datetime.UTC)
    clock = [start]
    formatted = []
    monkeypatch.setattr(accept.timezone, "now", lambda: clock[0])
    monkeypatch.setattr(
        accept, "format_datetime", lambda d: formatted.append(d) or format_datetime(d)
    )
    client = ClientInfo(helo="client.example.net", ip="192.0.2.7")
    stamps = []
    for moment in (
        start,
        start.replace(microsecond=999_999),
        start + datetime.timedelta(seconds=1),
    ):
        clock[0] = moment
        header = accept.received_header(client=client, queue_id="Q", recipients=["b@example.org"])
        stamps.append(header.decode().rsplit("; ", 1)[1].strip())
    assert stamps == [
        "Sun, 01 Mar 2026 12:00:05 +0000",
        "Sun, 01 Mar 2026 12:00:05 +0000",
        "Sun, 01 Mar 2026 12:00:06 +0000",
    ]
    assert len(formatted) == 2


@pytest.mark.parametrize("inline_max", [0, 64 * 1024], ids=["file", "inline"])
def test_local_and_remote_share_one_blob_in_one_transaction(people, blob_dir, settings, inline_max):
    settings.MAILHOST_BLOB_INLINE_MAX = inline_max
    result = message_accept(
        raw=RAW,
        mail_from="alice@example.org",
        recipients=[
            "bob@example.org",
            "carol@example.org",
            EnvelopeRecipient(
                "dan@remote.example", notify="FAILURE", orcpt="rfc822;dan@remote.example"
            ),
        ],
        authenticated_mailbox=people["alice"],
    )
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@example.org", "delivered"),
        ("carol@example.org", "delivered"),
        ("dan@remote.example", "queued"),
    ]
    blob = Blob.objects.get()
    assert set(Message.objects.values_list("blob_id", flat=True)) == {blob.id}
    spool = OutboundMessage.objects.get(queue_id=result.queue_id)
    assert spool.blob_id == blob.id and spool.size == result.size == blob.size
    # Small bytes in the row (made durable by the same commit), bigger ones in one file.
    assert len(files(blob_dir)) == (0 if inline_max else 1)
    assert (blob.data is not None) == bool(inline_max)
    assert blob_read(spool.blob).endswith(RAW)


def test_unauthenticated_remote_recipient_is_never_queued(people):
    result = message_accept(
        raw=RAW, mail_from="x@remote.example", recipients=["bob@example.org", "dan@remote.example"]
    )
    assert [r.status for r in result.recipients] == ["delivered", "relay_denied"]
    assert not OutboundMessage.objects.exists()


def test_nothing_accepted_leaves_no_blob(people, blob_files):
    result = message_accept(raw=RAW, mail_from="x@remote.example", recipients=["zed@example.org"])
    assert not result.accepted and result.recipients[0].status == "unknown"
    assert not Blob.objects.exists() and files(blob_files) == []


def test_storage_failure_leaves_nothing_half_done(people, blob_files, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(accept, "spool_rows_create", broken)
    inbox = Folder.objects.get(mailbox=people["bob"], name="INBOX")
    with pytest.raises(StorageError):
        message_accept(
            raw=RAW,
            mail_from="alice@example.org",
            recipients=["bob@example.org", "dan@remote.example"],
            authenticated_mailbox=people["alice"],
        )
    assert not Message.objects.exists() and not Blob.objects.exists()
    assert files(blob_files) == []
    inbox.refresh_from_db()
    assert inbox.uidnext == 1 and inbox.message_count == 0
    assert Mailbox.objects.get(pk=people["bob"].pk).used_bytes == 0


def test_prepare_writes_the_bytes_and_file_and_spool_makes_the_rows(people, blob_files):
    """The two steps of message_accept: the bytes are on disk before any row exists, and the
    rows come in the second step, which returns once they are committed."""
    prepared = message_prepare(
        raw=RAW,
        mail_from="alice@example.org",
        envelope=[EnvelopeRecipient("bob@example.org"), EnvelopeRecipient("dan@remote.example")],
        client=ClientInfo(helo="laptop", ip="192.0.2.1"),
        authenticated_mailbox=people["alice"],
        spool=SpoolOptions(),
    )
    assert isinstance(prepared, Prepared)
    assert [p.name for p in files(blob_files)] == [prepared.name.rsplit("/", 1)[-1]]
    assert not Blob.objects.exists() and not Message.objects.exists()
    result = file_and_spool(prepared)
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@example.org", Outcome.DELIVERED),
        ("dan@remote.example", Outcome.QUEUED),
    ]
    assert Message.objects.get().blob.name == prepared.name
    assert OutboundMessage.objects.get().queue_id == prepared.queue_id == result.queue_id


def test_each_front_end_has_words_for_every_refusal_at_rcpt():
    from protocols.smtp.handler import RECIPIENT_REPLIES
    from webmail.sending import RECIPIENT_PROBLEMS

    refusals = {
        Outcome.INVALID,
        Outcome.RELAY_DENIED,
        Outcome.NO_SUCH_USER,
        Outcome.OVER_QUOTA,
        Outcome.TOO_BIG,
    }
    assert set(RECIPIENT_REPLIES) == refusals
    assert set(RECIPIENT_PROBLEMS) == refusals


def test_blob_write_failure_is_a_storage_error(people, monkeypatch):
    def broken(raw):
        raise OSError("disk full")

    monkeypatch.setattr(accept, "blob_write", broken)
    with pytest.raises(StorageError):
        message_accept(raw=RAW, mail_from="x@remote.example", recipients=["bob@example.org"])
    assert not Message.objects.exists()


def test_message_submit_checks_the_sender(people):
    with pytest.raises(SenderNotAllowed):
        message_submit(
            mailbox=people["alice"],
            raw=RAW,
            mail_from="bob@example.org",
            recipients=["carol@example.org"],
        )
    with pytest.raises(InvalidAddress):
        message_submit(
            mailbox=people["alice"],
            raw=RAW,
            mail_from="alice@example.org",
            recipients=["not an address"],
        )
    with pytest.raises(NoRecipients):
        message_submit(
            mailbox=people["alice"],
            raw=RAW,
            mail_from="alice@example.org",
            recipients=["ghost@example.org"],
        )
    assert not Message.objects.exists()


def test_message_submit_adds_headers_and_signs(people):
    result = message_submit(
        mailbox=people["alice"],
        raw=b"From: alice@example.org\r\nTo: carol@example.org\r\nSubject: s\r\n\r\nbody\r\n",
        mail_from="alice@example.org",
        recipients=["carol@example.org", "<dan@remote.example>"],
        client_ip="198.51.100.4",
    )
    assert [r.status for r in result.recipients] == ["delivered", "queued"]
    stored = blob_read(Message.objects.get().blob)
    head = stored.split(b"\r\n\r\n")[0]
    assert head.startswith(b"DKIM-Signature: ")
    assert b"Received: from webmail ([198.51.100.4])" in head
    assert b" with HTTPS id " + result.queue_id.encode() in head
    assert b"\r\nDate: " in head and b"\r\nMessage-ID: <" in head


def recipient_check(address: str, *, relay_allowed: bool, size: int = 0) -> Outcome:
    return recipient_verdict(address, relay_allowed=relay_allowed, size=size)[0]


def test_recipient_check(people):
    alias_create(address="fwd@example.org", destinations=["far@elsewhere.example"])
    assert recipient_check("bob@example.org", relay_allowed=False) is Outcome.OK
    assert recipient_check("fwd@example.org", relay_allowed=False) is Outcome.OK
    assert recipient_check("zed@example.org", relay_allowed=False) is Outcome.NO_SUCH_USER
    assert recipient_check("x@remote.example", relay_allowed=False) is Outcome.RELAY_DENIED
    assert recipient_check("x@remote.example", relay_allowed=True) is Outcome.OK
    assert recipient_check("x@[127.0.0.1]", relay_allowed=True) is Outcome.INVALID
    Mailbox.objects.filter(pk=people["bob"].pk).update(quota=1000, used_bytes=990)
    assert recipient_check("bob@example.org", relay_allowed=False, size=5) is Outcome.OK
    assert recipient_check("bob@example.org", relay_allowed=False, size=50) is Outcome.OVER_QUOTA
    assert recipient_check("bob@example.org", relay_allowed=False, size=5000) is Outcome.TOO_BIG


def test_recipient_check_of_a_message_limit(people, django_assert_num_queries):
    Mailbox.objects.filter(pk=people["bob"].pk).update(quota_messages=2, used_messages=1)
    assert recipient_check("bob@example.org", relay_allowed=False, size=5000) is Outcome.OK
    Mailbox.objects.filter(pk=people["bob"].pk).update(used_messages=2)
    # full for now, never TOO_BIG: an expunge makes room for a message of any size
    with django_assert_num_queries(1):
        assert recipient_check("bob@example.org", relay_allowed=False, size=5000) is (
            Outcome.OVER_QUOTA
        )
    alias_create(address="both@example.org", destinations=["bob@example.org", "carol@example.org"])
    assert recipient_check("both@example.org", relay_allowed=False, size=5000) is Outcome.OK
    Mailbox.objects.filter(pk=people["carol"].pk).update(quota=1000, used_bytes=0)
    assert recipient_check("both@example.org", relay_allowed=False, size=5000) is (
        Outcome.OVER_QUOTA
    )


def test_recipient_check_of_a_mailbox_is_one_query(people, django_assert_num_queries):
    # RCPT runs for every recipient of every message: domain, mailbox and quota in one go.
    Mailbox.objects.filter(pk=people["bob"].pk).update(quota=1000, used_bytes=990)
    with django_assert_num_queries(1):
        assert recipient_check("Bob@Example.org", relay_allowed=False, size=50) is (
            Outcome.OVER_QUOTA
        )
    with django_assert_num_queries(1):
        assert recipient_check("nobody@remote.example", relay_allowed=False) is (
            Outcome.RELAY_DENIED
        )
    Mailbox.objects.filter(pk=people["bob"].pk).update(active=False)
    assert recipient_check("bob@example.org", relay_allowed=False) is Outcome.NO_SUCH_USER


def test_a_local_recipient_that_no_longer_fits_is_queued_not_dropped(people):
    Mailbox.objects.filter(pk=people["bob"].pk).update(quota=10, used_bytes=10)
    result = message_accept(
        raw=RAW,
        mail_from="x@remote.example",
        recipients=["bob@example.org", "carol@example.org", "gone@example.org"],
    )
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@example.org", "queued"),
        ("carol@example.org", "delivered"),
        ("gone@example.org", "queued"),
    ]
    spool = OutboundMessage.objects.get(queue_id=result.queue_id)
    assert sorted(spool.recipients.values_list("address", flat=True)) == [
        "bob@example.org",
        "gone@example.org",
    ]
    assert Message.objects.get().folder.mailbox_id == people["carol"].pk


def test_message_submit_reports_late_refusals_instead_of_queueing(people):
    Mailbox.objects.filter(pk=people["bob"].pk).update(quota=10, used_bytes=10)
    result = message_submit(
        mailbox=people["alice"],
        raw=RAW,
        mail_from="alice@example.org",
        recipients=["bob@example.org", "carol@example.org"],
    )
    assert [(r.address, r.status) for r in result.refused] == [("bob@example.org", "over_quota")]
    assert not OutboundMessage.objects.exists()


def test_port_25_reads_the_header_once_and_stores_that_reading(people, monkeypatch):
    # Issue 22: the spam rules, the spam flag and the stored summary share one parse of the
    # header (the builtin scorer and delivery each parsed it again); what is stored is what a
    # fresh reading of the stored bytes gives.
    from mailboxes import headers

    parses = []
    parse = headers.parse_header
    monkeypatch.setattr(headers, "parse_header", lambda block: parses.append(1) or parse(block))
    raw = (
        b"From: Alice <alice@remote.example>\r\nTo: bob@example.org\r\nSubject: Hello there\r\n"
        b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@remote.example>\r\n"
        b"X-Spam: Yes\r\n\r\nbody\r\n"
    )
    result = message_accept(
        raw=raw, mail_from="alice@remote.example", recipients=["bob@example.org"]
    )
    assert result.accepted
    assert len(parses) == 1
    monkeypatch.undo()
    message = Message.objects.select_related("blob").get(folder__mailbox=people["bob"])
    stored = blob_read(message.blob)
    assert stored.count(b"X-Spam: ") == 1  # ours; the forged one was removed
    summary, spam = headers.summarize_and_spam(stored)
    assert {k: getattr(message, k) for k in summary} == summary
    assert spam is (b"X-Spam: Yes" in stored)


def test_a_submission_reads_its_from_header_once(people, monkeypatch):
    """The sender check reads the From addresses, and DKIM signs for the first one's domain
    from them instead of parsing the header again (before: two parses a submission). The
    one reading is headers.field_values', which reads the From fields of a header of fields
    as BytesHeaderParser's Message has them, without the feed parser (before: the feed
    parser, per line) nor the Message (before: parse_header's)."""
    from email.parser import BytesHeaderParser

    import dkim

    from delivery.dkim import dkim_public_key_value
    from mailboxes import headers

    parses = []
    reads = []
    fed = []
    real = BytesHeaderParser.parsebytes
    parse = headers.parse_header
    read = headers.field_values

    def counting(self, text, headersonly=True):  # noqa: ANN001, ANN202
        fed.append(text[:40])
        return real(self, text, headersonly)

    monkeypatch.setattr(BytesHeaderParser, "parsebytes", counting)
    monkeypatch.setattr(headers, "parse_header", lambda block: parses.append(1) or parse(block))
    monkeypatch.setattr(headers, "field_values", lambda *args: reads.append(1) or read(*args))
    alice = Mailbox.objects.get(local_part="alice")
    raw = b"From: Alice <alice@example.org>\r\nTo: x@remote.test\r\nSubject: s\r\n\r\nbody\r\n"
    result = message_submit(
        mailbox=alice, raw=raw, mail_from="alice@example.org", recipients=["x@remote.test"]
    )
    assert result.accepted
    assert len(reads) == 1 and parses == []
    assert fed == []
    signed = blob_read(OutboundMessage.objects.get().blob)
    assert b"d=example.org" in signed.split(b"\r\n\r\n", 1)[0]
    key = dkim_public_key_value(alice.domain).encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: key)


def random_headers(rng, names: list[bytes]) -> list[bytes]:  # noqa: ANN001
    """Header sections of lines that start (or almost start) the fields `names` in any case,
    with blanks before the colon or in front, as continuations, after bare LFs and CRs, with
    8-bit octets, first or last, and some followed by a body."""
    pieces = [
        *names,
        b"X-Other",
        b" ",
        b"\t",
        b":",
        b"\xc3\x89",
        b"\r\n",
        b"\n",
        b"\r",
        b"No",
        b" no ",
    ]
    found = []
    for _ in range(400):
        lines = []
        for _ in range(rng.randrange(0, 8)):
            word = bytes(
                c ^ 0x20 if rng.random() < 0.3 and chr(c).isalpha() else c
                for c in rng.choice(names)
            )
            line = (
                rng.choice([b"", b"", b" ", b"\t", b"x"])
                + word
                + rng.choice([b":", b" :", b"\t:", b"", b"x:"])
            )
            line += b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 4)))
            lines.append(line)
        head = b"".join(line + rng.choice([b"\r\n", b"\r\n", b"\n", b"\r"]) for line in lines)
        found.append(head + rng.choice([b"", b"\r\n", b"\r\nbody\r\nReceived: no\r\n"]))
    return found


def test_the_field_checks_find_what_the_case_insensitive_patterns_found(settings):
    """hop_count_check and submission_headers search the lower-cased header for a literal
    newline and name (re tried the (?im)^ patterns at every octet): the same counts and the
    same fields added, for any spelling, placement and line ending."""
    import random

    rng = random.Random(5321)
    counted = set()
    for head in random_headers(rng, [b"Received", b"Date", b"Message-ID"]):
        section = accept._header_section(head)
        hops = len(re.findall(rb"(?im)^Received[ \t]*:", section))
        counted.add(hops)
        settings.MAILHOST_MAX_HOPS = hops
        accept.hop_count_check(head)
        settings.MAILHOST_MAX_HOPS = hops - 1
        with pytest.raises(accept.TooManyHops, match=f"^{hops} Received"):
            accept.hop_count_check(head)
        added = accept.submission_headers(head)
        for name, field in ((b"date", b"Date: "), (b"message-id", b"Message-ID: ")):
            present = re.search(rb"(?im)^" + re.escape(name) + rb"[ \t]*:", section)
            assert (field in added) is (present is None), head
    assert counted >= {0, 1, 2, 3}

"""Compose, reply, forward, drafts and sending through the submission service."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from delivery.models import OutboundMessage, OutboundRecipient
from mailboxes import selectors, services
from mailboxes.models import Mailbox, Message
from tests.webmail.conftest import deliver, folder, make_raw

pytestmark = pytest.mark.django_db


def parsed(message: Message):
    return BytesParser(policy=policy.default).parsebytes(selectors.blob_read(message.blob))


def only(folder_obj) -> Message:
    messages = list(Message.objects.filter(folder=folder_obj))
    assert len(messages) == 1, messages
    return messages[0]


def test_compose_page(web):
    response = web.get("/compose/?to=bob@example.org")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'value="bob@example.org"' in body
    assert 'enctype="multipart/form-data"' in body and "csrfmiddlewaretoken" in body
    assert "Alice Liddell &lt;alice@example.org&gt;" in body


def test_send_to_a_local_mailbox_with_attachments(web, alice, bob):
    files = [
        SimpleUploadedFile("notes.txt", b"first file\n", content_type="text/plain"),
        SimpleUploadedFile("Über.pdf", b"%PDF-1.4 data", content_type="application/pdf"),
    ]
    response = web.post(
        "/compose/",
        {
            "to": "Bob <bob@example.org>",
            "bcc": "alice@example.org",
            "subject": "Files for you ✓",
            "body": "Hi Bob,\nhere they are.\n",
            "attachments": files,
            "action": "send",
        },
    )
    assert response.status_code == 302
    sent = folder(alice, "Sent")
    copy = only(sent)
    assert response["Location"] == f"/m/{sent.pk}/{copy.uid}/"
    assert copy.seen and not copy.draft
    received = only(folder(bob, "INBOX"))
    message = parsed(received)
    assert message["Subject"] == "Files for you ✓"
    assert message["From"] == "Alice Liddell <alice@example.org>"
    assert message["Bcc"] is None  # never in what the recipients get
    assert "DKIM-Signature" in message and "Received" in message  # the 587 path
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == "Hi Bob,\nhere they are.\n"
    names = [(p.get_filename(), p.get_content_type()) for p in message.iter_attachments()]
    assert names == [("notes.txt", "text/plain"), ("Über.pdf", "application/pdf")]
    pdf = list(message.iter_attachments())[1]
    assert pdf.get_content() == b"%PDF-1.4 data"
    # The Sent copy keeps Bcc (only the sender sees it) and the same Message-ID.
    copy_message = parsed(copy)
    assert copy_message["Bcc"] == "alice@example.org"
    assert copy_message["Message-ID"] == message["Message-ID"]
    # alice was Bcc'd: she got it too.
    assert Message.objects.filter(folder=folder(alice, "INBOX")).count() == 1


def test_send_shows_a_success_message(web, bob):
    response = web.post(
        "/compose/",
        {"to": "bob@example.org", "subject": "x", "body": "y", "action": "send"},
        follow=True,
    )
    assert b"Message sent to bob@example.org." in response.content


def test_send_to_a_remote_address_is_spooled(web, alice):
    response = web.post(
        "/compose/",
        {"to": "dora@remote.example", "subject": "Far away", "body": "hello", "action": "send"},
    )
    assert response.status_code == 302
    spooled = OutboundMessage.objects.get()
    assert spooled.sender_mailbox_id == alice.pk
    assert spooled.mail_from == "alice@example.org"
    assert [r.address for r in spooled.recipients.all()] == ["dora@remote.example"]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("to", "not an address", "Not a valid address: not an address"),
        ("to", "bob@", "Not a valid address: bob@"),
        ("cc", "ok@example.org, broken@@x", "Not a valid address: broken@@x"),
        ("bcc", "a b c", "Not a valid address: a b c"),
        ("to", "", "Add at least one recipient."),
    ],
)
def test_bad_addresses_are_shown_with_nothing_lost(web, bob, field, value, error):
    data = {
        "to": "bob@example.org",
        "subject": "Keep me",
        "body": "Body text stays",
        "action": "send",
    }
    data[field] = value
    response = web.post("/compose/", data)
    assert response.status_code == 400
    body = response.content.decode()
    assert error in body
    assert 'value="Keep me"' in body and "Body text stays" in body
    assert Message.objects.filter(folder=folder(bob, "INBOX")).count() == 0


def test_unknown_local_recipient_is_refused_before_sending(web, bob):
    response = web.post(
        "/compose/",
        {"to": "bob@example.org, ghost@example.org", "subject": "s", "body": "b", "action": "send"},
    )
    assert response.status_code == 400
    assert b"ghost@example.org has no mailbox here" in response.content
    assert Message.objects.filter(folder=folder(bob, "INBOX")).count() == 0


def test_recipient_over_quota(web, bob):
    bob.quota = 10
    bob.save()
    response = web.post(
        "/compose/", {"to": "bob@example.org", "subject": "s", "body": "b", "action": "send"}
    )
    assert response.status_code == 400
    assert b"bob@example.org cannot take a message this large" in response.content


def test_sender_over_quota_is_told_before_sending(web, alice, bob):
    alice.quota = 100
    alice.save()
    response = web.post(
        "/compose/", {"to": "bob@example.org", "subject": "s", "body": "b", "action": "send"}
    )
    assert response.status_code == 400
    assert b"your mailbox is over quota" in response.content
    assert Message.objects.filter(folder=folder(bob, "INBOX")).count() == 0


def test_message_limits_of_recipient_and_sender(web, alice, bob):
    send = {"to": "bob@example.org", "subject": "s", "body": "b", "action": "send"}
    hello = b"Subject: x\r\n\r\nHi.\r\n"
    services.message_deliver(raw=hello, recipients=["alice@example.org", "bob@example.org"])
    bob.quota_messages = 1
    bob.save(update_fields=["quota_messages"])
    response = web.post("/compose/", send)
    assert response.status_code == 400
    assert b"bob@example.org has a full mailbox" in response.content
    bob.quota_messages = 0
    bob.save(update_fields=["quota_messages"])
    # the copy for Sent would be the sender's second message
    alice.quota_messages = 1
    alice.save(update_fields=["quota_messages"])
    response = web.post("/compose/", send)
    assert response.status_code == 400
    assert b"your mailbox is over quota" in response.content
    assert Message.objects.filter(folder=folder(bob, "INBOX")).count() == 1


def test_too_large(web, bob, settings):
    settings.MAILHOST_MAX_MESSAGE_SIZE = 2000
    response = web.post(
        "/compose/",
        {
            "to": "bob@example.org",
            "subject": "big",
            "body": "b",
            "action": "send",
            "attachments": [SimpleUploadedFile("big.bin", b"x" * 5000)],
        },
    )
    assert response.status_code == 400
    assert b"Not attached: big.bin (5 KB)." in response.content
    assert Message.objects.filter(folder=folder(bob, "INBOX")).count() == 0


def test_uploads_survive_an_error_in_a_draft(web, alice, bob):
    response = web.post(
        "/compose/",
        {
            "to": "bob@example.org, wrong",
            "subject": "With file",
            "body": "text",
            "action": "send",
            "attachments": [SimpleUploadedFile("keep.txt", b"precious")],
        },
    )
    assert response.status_code == 400
    assert b"Your attachments were saved with a draft" in response.content
    draft = only(folder(alice, "Drafts"))
    assert draft.draft
    kept = response.context["kept"]
    assert [k.filename for k in kept] == ["keep.txt"]
    # Fix the address and send, naming the kept file: it goes out, the draft goes away.
    response = web.post(
        "/compose/",
        {
            "to": "bob@example.org",
            "subject": "With file",
            "body": "text",
            "action": "send",
            "keep": [k.ref for k in kept],
            "draft_uid": response.context["draft_uid"],
        },
    )
    assert response.status_code == 302
    received = parsed(only(folder(bob, "INBOX")))
    assert [p.get_content() for p in received.iter_attachments()] == ["precious"]
    assert Message.objects.filter(folder=folder(alice, "Drafts")).count() == 0


def test_save_draft_and_resume(web, alice, bob):
    response = web.post(
        "/compose/",
        {
            "to": "bob@example.org",
            "cc": "carol@remote.example",
            "bcc": "secret@remote.example",
            "subject": "Half done",
            "body": "to be continued",
            "action": "save",
            "attachments": [SimpleUploadedFile("a.txt", b"aaa")],
        },
    )
    drafts = folder(alice, "Drafts")
    draft = only(drafts)
    assert response.status_code == 302
    assert response["Location"] == f"/compose/?draft={draft.uid}"
    assert draft.draft and draft.seen
    resumed = web.get(response["Location"])
    form = resumed.context["draft"]
    assert (form.to, form.cc, form.bcc, form.subject) == (
        "bob@example.org",
        "carol@remote.example",
        "secret@remote.example",
        "Half done",
    )
    assert form.body.strip() == "to be continued"
    assert [k.filename for k in resumed.context["kept"]] == ["a.txt"]
    # Saving again replaces the draft rather than piling up copies.
    web.post(
        "/compose/",
        {
            "to": "bob@example.org",
            "subject": "Half done",
            "body": "more",
            "action": "save",
            "draft_uid": str(draft.uid),
            "keep": [k.ref for k in resumed.context["kept"]],
        },
    )
    newer = only(drafts)
    assert newer.uid != draft.uid
    assert [p.get_filename() for p in parsed(newer).iter_attachments()] == ["a.txt"]


def test_resaving_a_draft_fits_a_mailbox_at_its_limits(web, alice):
    """The earlier version is freed in the same transaction as the new one is stored: at
    exactly the message limit, and with room for half a draft more, a re-save fits (its
    Date and Message-ID may make it a few bytes longer than the earlier version)."""
    form = {"to": "bob@example.org", "subject": "Plans", "body": "first words", "action": "save"}
    web.post("/compose/", form)
    drafts = folder(alice, "Drafts")
    draft = only(drafts)
    usage = selectors.mailbox_quota(alice.pk)
    Mailbox.objects.filter(pk=alice.pk).update(
        quota=usage.used_bytes + draft.size // 2, quota_messages=usage.used_messages
    )
    response = web.post("/compose/", {**form, "body": "other words", "draft_uid": str(draft.uid)})
    assert response.status_code == 302, response.content.decode()
    newer = only(drafts)
    assert newer.uid != draft.uid and "other words" in parsed(newer).get_content()
    assert selectors.mailbox_quota(alice.pk).used_messages == usage.used_messages


def test_unknown_draft(web):
    assert web.get("/compose/?draft=77").status_code == 404
    assert web.get("/compose/?draft=x").status_code == 404


def test_reply_prefills_and_marks_answered(web, alice, inbox, bob):
    deliver(
        make_raw(
            subject="Question",
            sender="Bob <bob@example.org>",
            to="alice@example.org, carol@remote.example",
            message_id="<q1@example.org>",
            references="<q0@example.org>",
            text="Are you coming?\nPlease say.",
        )
    )
    response = web.get(f"/compose/?reply={inbox.pk}:1")
    draft = response.context["draft"]
    assert draft.to == "Bob <bob@example.org>"
    assert draft.cc == ""
    assert draft.subject == "Re: Question"
    assert draft.in_reply_to == "<q1@example.org>"
    assert draft.references == "<q0@example.org> <q1@example.org>"
    assert "> Are you coming?\n> Please say." in draft.body
    everyone = web.get(f"/compose/?reply={inbox.pk}:1&all=1").context["draft"]
    assert everyone.cc == "carol@remote.example"  # not alice herself
    response = web.post(
        "/compose/",
        {
            "to": draft.to,
            "subject": draft.subject,
            "body": "Yes!\n" + draft.body,
            "in_reply_to": draft.in_reply_to,
            "references": draft.references,
            "answer_ref": response.context["answer_ref"],
            "action": "send",
        },
    )
    assert response.status_code == 302
    assert Message.objects.get(folder=inbox, uid=1).answered
    reply = parsed(only(folder(bob, "INBOX")))
    assert reply["In-Reply-To"] == "<q1@example.org>"
    assert reply["References"] == "<q0@example.org> <q1@example.org>"
    # The reply joins the thread of the original.
    assert only(folder(bob, "INBOX")).thread_key == "<q0@example.org>"


def test_reply_to_header_is_respected(web, inbox):
    raw = make_raw(subject="List mail")
    raw = raw.replace(b"Subject:", b"Reply-To: list@lists.example\nSubject:", 1)
    deliver(raw)
    assert web.get(f"/compose/?reply={inbox.pk}:1").context["draft"].to == "list@lists.example"


def test_forward_inline_keeps_attachments(web, inbox, bob):
    deliver(make_raw(subject="Report", attachments=(("r.pdf", "application/pdf", b"%PDF-r"),)))
    response = web.get(f"/compose/?forward={inbox.pk}:1")
    draft = response.context["draft"]
    assert draft.subject == "Fwd: Report"
    assert "---------- Forwarded message ----------" in draft.body
    assert "Subject: Report" in draft.body
    kept = response.context["kept"]
    assert [k.filename for k in kept] == ["r.pdf"]
    web.post(
        "/compose/",
        {
            "to": "bob@example.org",
            "subject": draft.subject,
            "body": draft.body,
            "keep": [k.ref for k in kept],
            "action": "send",
        },
    )
    forwarded = parsed(only(folder(bob, "INBOX")))
    attachment = next(forwarded.iter_attachments())
    assert attachment.get_filename() == "r.pdf" and attachment.get_content() == b"%PDF-r"


def test_forward_as_attachment(web, inbox, bob):
    original = make_raw(subject="Original")
    deliver(original)
    response = web.get(f"/compose/?forward={inbox.pk}:1&mode=attach")
    kept = response.context["kept"]
    assert [k.filename for k in kept] == ["Original.eml"]
    web.post(
        "/compose/",
        {
            "to": "bob@example.org",
            "subject": "Fwd: Original",
            "body": "see attached",
            "keep": [k.ref for k in kept],
            "action": "send",
        },
    )
    forwarded = parsed(only(folder(bob, "INBOX")))
    attached = next(forwarded.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert attached.get_content()["Subject"] == "Original"


def test_reply_or_forward_of_someone_elses_message(web, bob):
    deliver(make_raw(to="bob@example.org"), "bob@example.org")
    bobs = folder(bob, "INBOX")
    assert web.get(f"/compose/?reply={bobs.pk}:1").status_code == 404
    assert web.get(f"/compose/?forward={bobs.pk}:1").status_code == 404
    assert web.get("/compose/?reply=garbage").status_code == 404


def test_kept_attachment_of_another_mailbox_is_ignored(web, bob):
    deliver(
        make_raw(to="bob@example.org", attachments=(("s.txt", "text/plain", b"secret"),)),
        "bob@example.org",
    )
    bobs = folder(bob, "INBOX")
    web.post(
        "/compose/",
        {
            "to": "bob@example.org",
            "subject": "steal",
            "body": "b",
            "keep": [f"{bobs.pk}:1:2"],
            "action": "send",
        },
    )
    newest = Message.objects.filter(folder=bobs).order_by("-uid").first()
    assert list(parsed(newest).iter_attachments()) == []


def test_partial_refusal_at_acceptance_is_reported(web, bob, monkeypatch):
    # The early check passes, then the mailbox fills up before the message is filed.
    from webmail import sending

    monkeypatch.setattr(sending, "recipient_problems", lambda recipients, size: [])
    bob.quota = 10
    bob.save()
    response = web.post(
        "/compose/",
        {
            "to": "bob@example.org, dora@remote.example",
            "subject": "s",
            "body": "b",
            "action": "send",
        },
        follow=True,
    )
    assert b"Not delivered to: bob@example.org has a full mailbox" in response.content
    assert b"Message sent to dora@remote.example." in response.content
    # The Sent copy remembers it: its delivery block does not claim a local delivery.
    states = {r.address: (r.state, r.detail) for r in response.context["delivery"]}
    assert states == {
        "bob@example.org": ("bounced", "has a full mailbox (try again later)"),
        "dora@remote.example": ("queued", ""),
    }


def test_nothing_accepted_keeps_the_form(web, bob, monkeypatch):
    from webmail import sending

    monkeypatch.setattr(sending, "recipient_problems", lambda recipients, size: [])
    bob.quota = 10
    bob.save()
    response = web.post(
        "/compose/", {"to": "bob@example.org", "subject": "kept", "body": "b", "action": "send"}
    )
    assert response.status_code == 400
    assert b"no recipient accepted the message" in response.content
    assert b'value="kept"' in response.content


def test_compose_wrong_method(web):
    assert web.put("/compose/").status_code == 405


def test_delivery_status_in_sent(web, alice, bob):
    from django.utils import timezone

    web.post(
        "/compose/",
        {
            "to": "bob@example.org, dora@remote.example, eve@far.example",
            "cc": "fay@far.example",
            "subject": "Status",
            "body": "b",
            "action": "send",
        },
    )
    sent = folder(alice, "Sent")
    copy = only(sent)
    rows = {r.address: r for r in OutboundRecipient.objects.all()}
    assert set(rows) == {"dora@remote.example", "eve@far.example", "fay@far.example"}
    page = web.get(f"/m/{sent.pk}/{copy.uid}/")
    states = {r.address: r.state for r in page.context["delivery"]}
    assert states == {
        "bob@example.org": "local",
        "dora@remote.example": "queued",
        "eve@far.example": "queued",
        "fay@far.example": "queued",
    }
    # What the delivery worker records, the reader sees.
    later = timezone.now() + timezone.timedelta(minutes=30)
    OutboundRecipient.objects.filter(address="dora@remote.example").update(
        status="delivered", last_reply="250 2.0.0 Ok: queued as 4F2A", mx_used="mx1.remote.example"
    )
    OutboundRecipient.objects.filter(address="eve@far.example").update(
        status="deferred",
        last_reply="451 4.7.1 Greylisted, try later",
        attempts=1,
        next_attempt_at=later,
    )
    OutboundRecipient.objects.filter(address="fay@far.example").update(
        status="failed", last_reply="550 5.1.1 No such user"
    )
    page = web.get(f"/m/{sent.pk}/{copy.uid}/")
    states = {r.address: (r.state, r.detail) for r in page.context["delivery"]}
    assert states["dora@remote.example"] == ("delivered", "250 2.0.0 Ok: queued as 4F2A")
    assert states["eve@far.example"] == ("deferred", "451 4.7.1 Greylisted, try later")
    assert states["fay@far.example"] == ("bounced", "550 5.1.1 No such user")
    body = page.content.decode()
    assert "via mx1.remote.example" in body and "next attempt" in body
    assert "1 attempt so far" in body


def test_no_delivery_block_outside_sent(web, inbox):
    deliver(make_raw())
    assert web.get(f"/m/{inbox.pk}/1/").context["delivery"] is None


def test_sent_copy_without_spool_record(web, alice):
    sent = folder(alice, "Sent")
    services.message_append(folder=sent, raw=make_raw(to="zed@far.example"), flags=["\\Seen"])
    page = web.get(f"/m/{sent.pk}/1/")
    assert [(r.address, r.state) for r in page.context["delivery"]] == [
        ("zed@far.example", "unknown")
    ]


def test_storage_failure_is_shown_and_nothing_is_sent(web, bob, settings, tmp_path):
    # The disk refuses the write: the blob directory sits under a plain file (and the
    # message goes to a file, however small).
    settings.MAILHOST_BLOB_INLINE_MAX = 0
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {
            "BACKEND": "mailboxes.storage.DurableFileSystemStorage",
            "OPTIONS": {"location": str(blocker / "blobs")},
        },
    }
    response = web.post(
        "/compose/",
        {"to": "bob@example.org", "subject": "Lost?", "body": "no", "action": "send"},
    )
    assert response.status_code == 400
    assert b"the server could not store the message; try again." in response.content
    assert b'value="Lost?"' in response.content
    assert Message.objects.filter(folder=folder(bob, "INBOX")).count() == 0
    assert not OutboundMessage.objects.exists()


def test_delivery_status_says_how_the_connection_was_protected(web, alice):
    web.post(
        "/compose/",
        {
            "to": "dora@remote.example, eve@far.example",
            "subject": "S",
            "body": "b",
            "action": "send",
        },
    )
    sent = folder(alice, "Sent")
    copy = only(sent)
    OutboundRecipient.objects.filter(address="dora@remote.example").update(
        status="delivered", mx_used="mx1.remote.example", protection="dane"
    )
    OutboundRecipient.objects.filter(address="eve@far.example").update(
        status="delivered", mx_used="mx.far.example", protection="plain"
    )
    page = web.get(f"/m/{sent.pk}/{copy.uid}/")
    shown = {r.address: r.protection for r in page.context["delivery"]}
    assert shown == {
        "dora@remote.example": "DANE (TLSA verified)",
        "eve@far.example": "none (plain text)",
    }
    assert "encryption: DANE (TLSA verified)" in page.content.decode()

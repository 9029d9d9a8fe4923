"""Reading: headers, bodies, the sandboxed HTML frame, attachments, raw source, threads."""

from __future__ import annotations

import re

import pytest
from django.core.files.storage import storages

from mailboxes import services
from mailboxes.models import Message
from tests.support.blobreads import FileReads
from tests.webmail.conftest import deliver, folder, make_raw

pytestmark = pytest.mark.django_db

HOSTILE_HTML = (
    "<html><head><style>body{background:url(https://track.example/bg.png)}</style>"
    "<script>document.title='pwned'</script></head><body>"
    '<p onclick="alert(1)">Hello <b>there</b></p>'
    '<img src="https://track.example/pixel.gif" alt="pixel">'
    '<p style="background-image:url(http://track.example/style.png)">styled</p>'
    '<a href="javascript:alert(2)">js link</a> <a href="https://example.net/page">real link</a>'
    '<iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input>'
    "</form><svg onload=alert(3)></svg></body></html>"
)

# A message whose attachment names are encoded both ways mail clients do it.
ENCODED_NAMES = (
    b"From: Carol <carol@remote.example>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: =?utf-8?q?Unterlagen_f=C3=BCr_Sie?=\r\n"
    b"Message-ID: <names@remote.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"See attached.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b1\r\n"
    b'Content-Type: text/plain; charset=utf-8; name="=?utf-8?b?0L/RgNC40LLQtdGCLnR4dA==?="\r\n'
    b'Content-Disposition: attachment; filename="=?utf-8?b?0L/RgNC40LLQtdGCLnR4dA==?="\r\n'
    b"\r\n"
    b"privet\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html\r\n"
    b'Content-Disposition: attachment; filename="page.html"\r\n'
    b"\r\n"
    b"<script>alert(1)</script>\r\n"
    b"--b1\r\n"
    b"Content-Type: image/svg+xml\r\n"
    b'Content-Disposition: inline; filename="logo.svg"\r\n'
    b"\r\n"
    b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>\r\n"
    b"--b1--\r\n"
)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def cid_message() -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Carol <carol@remote.example>"
    message["To"] = "alice@example.org"
    message["Subject"] = "Logo inside"
    message.set_content("Logo below")
    message.add_alternative('<p>Logo: <img src="cid:logo@remote.example"></p>', subtype="html")
    html = message.get_payload()[1]
    html.add_related(PNG, maintype="image", subtype="png", cid="<logo@remote.example>")
    return message.as_bytes()


def test_reading_shows_headers_and_marks_read(web, inbox):
    deliver(make_raw(subject="Plain one", text="Line one\nhttps://example.net/x\n"))
    response = web.get(f"/m/{inbox.pk}/1/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Plain one" in body and "carol@remote.example" in body
    assert "Line one" in body
    assert 'href="https://example.net/x"' in body  # plain text links are clickable
    assert "<iframe" not in body
    message = Message.objects.get(folder=inbox, uid=1)
    assert message.seen
    inbox.refresh_from_db()
    assert inbox.unseen_count == 0


def test_opening_a_read_message_does_not_bump_modseq(web, inbox):
    deliver(make_raw())
    web.get(f"/m/{inbox.pk}/1/")
    inbox.refresh_from_db()
    before = inbox.highestmodseq
    web.get(f"/m/{inbox.pk}/1/")
    inbox.refresh_from_db()
    assert inbox.highestmodseq == before


def test_html_is_framed_and_remote_images_blocked(web, inbox):
    deliver(make_raw(html=HOSTILE_HTML))
    page = web.get(f"/m/{inbox.pk}/1/")
    body = page.content.decode()
    assert "pixel.gif" not in body and "pwned" not in body  # nothing of the HTML on the page
    frame_tag = re.search(r"<iframe[^>]*>", body).group(0)
    assert 'sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"' in frame_tag
    assert "allow-scripts" not in frame_tag
    assert "Remote images are hidden" in body
    frame = web.get(f"/m/{inbox.pk}/1/frame/")
    assert frame.status_code == 200
    csp = frame["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "img-src 'self' data:;" in csp
    assert "http" not in csp and "sandbox" in csp
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    assert frame["Referrer-Policy"] == "no-referrer"
    html = frame.content.decode()
    for bad in (
        "<script",
        "onclick",
        "javascript:",
        "pixel.gif",
        "track.example",
        "<iframe",
        "<form",
        "onload",
        "pwned",
    ):
        assert bad not in html, bad
    assert "Hello <b>there</b>" in html
    assert '<a href="https://example.net/page" target="_blank"' in html


def test_remote_images_when_the_reader_allows_them(web, inbox):
    deliver(make_raw(html=HOSTILE_HTML))
    page = web.get(f"/m/{inbox.pk}/1/?images=1")
    assert f"/m/{inbox.pk}/1/frame/?images=1" in page.content.decode()
    assert "Remote images are hidden" not in page.content.decode()
    frame = web.get(f"/m/{inbox.pk}/1/frame/?images=1")
    assert "https:" in frame["Content-Security-Policy"]
    assert "script-src 'none'" in frame["Content-Security-Policy"]
    html = frame.content.decode()
    assert "https://track.example/pixel.gif" in html
    assert "<script" not in html


def test_plain_text_view_of_an_html_message(web, inbox):
    deliver(make_raw(html=HOSTILE_HTML, text="the text part"))
    page = web.get(f"/m/{inbox.pk}/1/?view=text")
    assert "the text part" in page.content.decode()
    assert "<iframe" not in page.content.decode()


def test_cid_images_point_at_their_part(web, inbox):
    deliver(cid_message())
    frame = web.get(f"/m/{inbox.pk}/1/frame/").content.decode()
    match = re.search(r'<img src="(/m/\d+/1/part/[\d.]+/)"', frame)
    assert match, frame
    image = web.get(match.group(1))
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert image.content == PNG
    assert image["Content-Disposition"].startswith("inline")
    # An inline image is part of the body, not listed as an attachment.
    page = web.get(f"/m/{inbox.pk}/1/")
    assert page.context["attachments"] == []


def test_attachments_download_with_decoded_names(web, inbox):
    deliver(ENCODED_NAMES)
    page = web.get(f"/m/{inbox.pk}/1/")
    names = [item["a"].filename for item in page.context["attachments"]]
    assert names == ["Résumé 2026.pdf", "привет.txt", "page.html", "logo.svg"]
    assert page.context["message"].subject == "Unterlagen für Sie"
    pdf = web.get(f"/m/{inbox.pk}/1/part/2/?download=1")
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content == b"%PDF-1.4\n"
    assert pdf["Content-Disposition"] == (
        "attachment; filename=\"Resume 2026.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf"
    )
    text = web.get(f"/m/{inbox.pk}/1/part/3/?download=1")
    assert text["Content-Type"] == "text/plain; charset=utf-8"
    assert (
        "filename*=UTF-8''%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82.txt" in text["Content-Disposition"]
    )
    assert text.content == b"privet"


def test_active_content_attachments_never_render_on_our_origin(web, inbox):
    deliver(ENCODED_NAMES)
    for path in ("4", "5"):  # text/html and image/svg+xml, even without ?download=1
        response = web.get(f"/m/{inbox.pk}/1/part/{path}/")
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Disposition"].startswith("attachment")
        assert "sandbox" in response["Content-Security-Policy"]
        assert response["X-Content-Type-Options"] == "nosniff"


def test_unknown_part(web, inbox):
    deliver(ENCODED_NAMES)
    assert web.get(f"/m/{inbox.pk}/1/part/9/").status_code == 404
    assert web.get(f"/m/{inbox.pk}/1/part/1.1.1/").status_code == 404
    assert web.get(f"/m/{inbox.pk}/1/part/x/").status_code == 404


def test_raw_source(web, inbox):
    raw = make_raw(subject="Source please")
    deliver(raw)
    response = web.get(f"/m/{inbox.pk}/1/raw/")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == raw
    assert "sandbox" in response["Content-Security-Policy"]
    download = web.get(f"/m/{inbox.pk}/1/raw/?download=1")
    assert download["Content-Type"] == "message/rfc822"
    assert download["Content-Disposition"] == 'attachment; filename="Source please.eml"'


def test_the_raw_source_of_a_large_message_streams_from_its_file(web, inbox, settings, monkeypatch):
    raw = make_raw(subject="Big one", text="0123456789abcdef\n" * 200_000)  # 3.4 MB
    deliver(raw)
    stored = Message.objects.select_related("blob").get().blob
    reads = FileReads(storages["blobs"], monkeypatch)
    response = web.get(f"/m/{inbox.pk}/1/raw/?download=1")
    assert response.streaming and response["Content-Length"] == str(stored.size)
    assert response["Content-Disposition"] == 'attachment; filename="Big one.eml"'
    assert b"".join(response.streaming_content) == raw
    assert max(reads.reads) == settings.MAILHOST_BLOB_STREAM_CHUNK  # never the whole file
    settings.MAILHOST_BLOB_STREAM_MIN = stored.size + 1  # below it: one read, as before
    response = web.get(f"/m/{inbox.pk}/1/raw/")
    assert not response.streaming and response.content == raw


def test_unknown_message_and_other_mailbox(web, inbox, bob):
    assert web.get(f"/m/{inbox.pk}/42/").status_code == 404
    assert web.get(f"/m/{inbox.pk}/42/frame/").status_code == 404
    assert web.get(f"/m/{inbox.pk}/42/raw/").status_code == 404
    deliver(make_raw(to="bob@example.org"), "bob@example.org")
    bobs = folder(bob, "INBOX")
    for suffix in ("", "frame/", "raw/", "part/1/"):
        assert web.get(f"/m/{bobs.pk}/1/{suffix}").status_code == 404


def test_conversation_shows_the_thread_across_folders(web, alice, inbox):
    deliver(make_raw(subject="Plans", message_id="<root@remote.example>", text="first words"))
    sent = folder(alice, "Sent")
    services.message_append(
        folder=sent,
        raw=make_raw(
            subject="Re: Plans",
            sender="alice@example.org",
            to="carol@remote.example",
            message_id="<reply@example.org>",
            in_reply_to="<root@remote.example>",
            references="<root@remote.example>",
            text="my answer",
        ),
        flags=["\\Seen"],
    )
    deliver(
        make_raw(
            subject="Re: Plans",
            message_id="<third@remote.example>",
            in_reply_to="<reply@example.org>",
            references="<root@remote.example> <reply@example.org>",
            text="third words",
        )
    )
    deliver(make_raw(subject="Unrelated"))
    page = web.get(f"/m/{inbox.pk}/2/")
    thread = page.context["thread"]
    assert len(thread) == 3
    assert [t["current"] for t in thread] == [False, False, True]
    body = page.content.decode()
    assert "first words" in body and "my answer" in body
    assert "Unrelated" not in body


def test_a_message_alone_has_no_conversation_block(web, inbox):
    deliver(make_raw())
    assert web.get(f"/m/{inbox.pk}/1/").context["thread"] == []


def test_a_draft_opens_in_compose(web, alice):
    drafts = folder(alice, "Drafts")
    services.message_append(folder=drafts, raw=make_raw(), flags=["\\Draft", "\\Seen"])
    response = web.get(f"/m/{drafts.pk}/1/")
    assert response.status_code == 302
    assert response["Location"] == "/compose/?draft=1"


def test_broken_message_still_shows(web, inbox):
    raw = (
        b"From: =?bogus?q?x?= <carol@remote.example>\r\nSubject: =?utf-8?b?!!!?=\r\n"
        b"Content-Type: multipart/mixed; boundary=nope\r\n\r\nno boundary at all\r\n"
    )
    deliver(raw)
    response = web.get(f"/m/{inbox.pk}/1/")
    assert response.status_code == 200
    assert web.get(f"/m/{inbox.pk}/1/frame/").status_code == 200

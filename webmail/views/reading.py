"""Reading one message: the page, the sandboxed HTML frame, attachments, raw source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from mailboxes import selectors, services
from mailboxes.charsets import part_charset
from mailboxes.folders import SpecialUse
from webmail import junk, mime, sanitize
from webmail.auth import mailbox_required
from webmail.security import DOWNLOAD_POLICY, frame_policy
from webmail.views.common import (
    content_disposition,
    folder_for,
    folder_items,
    header_date,
    human_size,
    message_for,
)
from webmail.views.mailbox import JUNKABLE

if TYPE_CHECKING:
    from mailboxes.models import Message

THREAD_LIMIT = 25
THREAD_TEXT_LIMIT = 20_000

FRAME_STYLE = (
    "html{color-scheme:light}"
    "body{margin:0;padding:4px 2px;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,"
    "sans-serif;color:#1f2328;word-wrap:break-word;overflow-wrap:anywhere}"
    "img{max-width:100%;height:auto}table{max-width:100%}pre{white-space:pre-wrap}"
    "a{color:#0b57d0}blockquote{margin:0 0 0 .6em;padding-left:.8em;border-left:3px solid #d0d7de}"
)


def why_junk(mailbox, message: Message, raw: bytes) -> junk.Explanation:
    """The stored verdict in plain words, and what the sender lists say of the sender now."""
    explanation = junk.explain(raw, authserv_id=settings.MAILHOST_HOSTNAME)
    listed = selectors.sender_lists([mailbox.pk], message.from_address).get(mailbox.pk)
    if listed == "block":
        explanation.findings.insert(
            0,
            junk.Finding(
                junk.BAD,
                gettext("%(address)s is on the block list (yours or your domain's).")
                % {"address": message.from_address},
                "sender_list=block",
            ),
        )
    elif explanation.findings and not explanation.bad:
        # The stored bytes carry the message's own reasons; each mailbox's (its classifier,
        # its lists) decide per mailbox and are not written into the shared copy.
        explanation.findings.insert(
            0,
            junk.Finding(
                junk.INFO,
                gettext(
                    "Nothing in the message itself or in its sender's authentication made it"
                    " junk: your junk filter (which learns from what you move to Junk), your"
                    " sender lists or one of your filters put it here."
                ),
                "mailbox",
            ),
        )
    return explanation


def _thread(message: Message, mailbox_id: int) -> list[Message]:
    return selectors.conversation_of(message, mailbox_id, limit=THREAD_LIMIT)


@require_GET
@mailbox_required
def message_view(request: HttpRequest, folder_id: int, uid: int) -> HttpResponse:
    folder = folder_for(request, folder_id)
    message = message_for(folder, uid)
    if message.draft and folder.special_use == SpecialUse.DRAFTS:
        return redirect(f"{reverse('webmail:compose')}?draft={uid}")
    raw = selectors.blob_read(message.blob)
    parsed = mime.read(raw)
    parsed.headers = [(n, header_date(v) if n == "Date" else v) for n, v in parsed.headers]
    if not message.seen:
        # Opening marks read, through the service, so IMAP and POP3 see it at once.
        services.messages_mark_read(folder=folder, uids=[uid])
        message.seen = True
    allow_images = request.GET.get("images") == "1"
    blocked = 0
    if parsed.html:
        blocked = sanitize.clean(
            parsed.html, cid_url=lambda cid: "", allow_remote=False
        ).blocked_images
    thread = []
    for item in _thread(message, request.mailbox.pk):
        if item.pk == message.pk:
            thread.append({"current": True, "message": item})
            continue
        try:
            text = mime.body_text(selectors.blob_read(item.blob))
        except Exception:  # a thread neighbour that cannot be read must not break the page
            text = ""
        thread.append(
            {
                "current": False,
                "message": item,
                "text": text[:THREAD_TEXT_LIMIT],
                "url": reverse("webmail:message", args=[item.folder_id, item.uid]),
            }
        )
    items = folder_items(request.mailbox.pk)
    delivery = None
    if folder.special_use == SpecialUse.SENT:
        from webmail.delivery_status import recipients_status

        delivery = recipients_status(request.mailbox, message, parsed, raw=raw)
    is_junk = folder.special_use == SpecialUse.JUNK
    context = {
        "folder": folder,
        "folders": items,
        "message": message,
        "is_junk": is_junk,
        "can_junk": folder.special_use in JUNKABLE,
        "junk": why_junk(request.mailbox, message, raw) if is_junk else None,
        "parsed": parsed,
        "attachments": [{"a": a, "size": human_size(a.size)} for a in parsed.visible_attachments],
        "has_html": bool(parsed.html),
        "show_text": request.GET.get("view") == "text" or not parsed.html,
        "allow_images": allow_images,
        "blocked_images": blocked,
        "thread": thread if len(thread) > 1 else [],
        "move_targets": [i for i in items if i.folder.pk != folder.pk],
        "is_trash": folder.special_use == SpecialUse.TRASH,
        "delivery": delivery,
        "frame_url": reverse("webmail:message_frame", args=[folder.pk, uid])
        + ("?images=1" if allow_images else ""),
    }
    return render(request, "webmail/message.html", context)


@require_GET
@mailbox_required
@xframe_options_sameorigin
def message_frame(request: HttpRequest, folder_id: int, uid: int) -> HttpResponse:
    """The sanitized HTML body, a document of its own for the sandboxed iframe."""
    folder = folder_for(request, folder_id)
    message = message_for(folder, uid)
    parsed = mime.read(selectors.blob_read(message.blob))
    allow_remote = request.GET.get("images") == "1"

    def cid_url(cid: str) -> str | None:
        path = parsed.cids.get(cid)
        if path is None:
            return None
        return reverse("webmail:message_part", args=[folder.pk, uid, path])

    html = parsed.html
    if not html:
        from django.utils.html import escape

        html = f"<pre>{escape(parsed.text)}</pre>"
    safe = sanitize.clean(html, cid_url=cid_url, allow_remote=allow_remote)
    document = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        f"<style>{FRAME_STYLE}</style></head><body>{safe.html}</body></html>"
    )
    response = HttpResponse(document, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = frame_policy(allow_remote_images=allow_remote)
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_GET
@mailbox_required
def message_part(request: HttpRequest, folder_id: int, uid: int, path: str) -> HttpResponse:
    """One attachment or inline part, with its type and its (RFC 2231/2047-decoded) name."""
    folder = folder_for(request, folder_id)
    message = message_for(folder, uid)
    email_message = mime.parse(selectors.blob_read(message.blob))
    part = mime.part_at(email_message, path)
    if part is None or part.is_multipart() and part.get_content_type() != "message/rfc822":
        return HttpResponse("No such part.", status=404, content_type="text/plain")
    ctype = part.get_content_type()
    data = mime.part_bytes(part)
    filename = mime.part_filename(part) or mime.fallback_name(ctype, path)
    # Only plain image types are ever shown inline from our origin; everything else
    # (HTML, SVG, PDF...) downloads, and the sandbox CSP keeps it inert even if opened.
    inline = ctype in mime.SAFE_INLINE_TYPES and request.GET.get("download") != "1"
    if inline:
        served_type = ctype
    elif ctype in {"text/html", "image/svg+xml"} or not ctype.startswith("text/"):
        served_type = (
            ctype if ctype not in {"text/html", "image/svg+xml"} else ("application/octet-stream")
        )
    else:
        served_type = f"{ctype}; charset={part_charset(part, 'utf-8')}"
    response = HttpResponse(data, content_type=served_type)
    response["Content-Disposition"] = content_disposition(filename, attachment=not inline)
    response["Content-Security-Policy"] = DOWNLOAD_POLICY
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
@mailbox_required
def message_raw(request: HttpRequest, folder_id: int, uid: int) -> HttpResponse:
    """The message exactly as stored; one of MAILHOST_BLOB_STREAM_MIN bytes or more is sent
    from the store a chunk at a time (one GET or one open file), never whole in memory."""
    folder = folder_for(request, folder_id)
    message = message_for(folder, uid)
    download = request.GET.get("download") == "1"
    content_type = "message/rfc822" if download else "text/plain; charset=utf-8"
    if message.blob.size >= settings.MAILHOST_BLOB_STREAM_MIN:
        chunks = selectors.blob_stream(message.blob)  # closed by Django when sent
        response = StreamingHttpResponse(chunks, content_type=content_type)
        response["Content-Length"] = str(message.blob.size)
    else:
        response = HttpResponse(selectors.blob_read(message.blob), content_type=content_type)
    if download:
        name = (message.subject or "message")[:80] + ".eml"
        response["Content-Disposition"] = content_disposition(name, attachment=True)
    response["Content-Security-Policy"] = DOWNLOAD_POLICY
    return response

"""Compose: new messages, replies, forwards, drafts; sending through the submission service.

Attachments carried over (from a resumed draft, a forwarded message, or a form that came
back with an error) are named by reference, `keep=<folder id>:<uid>:<part path>` (or
`:message` for a whole message attached), and read from the store when the message is
built. A form that fails with new uploads on it saves them with a draft first, so the reader
never has to pick the files again.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from mailboxes import selectors, services
from mailboxes.exceptions import MailhostError, NotFound, QuotaExceeded
from mailboxes.flags import Flags, SystemFlag
from mailboxes.folders import SpecialUse
from mailhost.proxy import client_address
from webmail import compose, delivery_status, mime
from webmail.auth import mailbox_required
from webmail.sending import SendError, refused_text, send
from webmail.views.common import folder_items, human_size, special_folder

if TYPE_CHECKING:
    from mailboxes.models import Folder, Message

logger = logging.getLogger(__name__)


@dataclass
class Kept:
    ref: str
    filename: str
    size: str
    upload: compose.Upload

    @property
    def octets(self) -> int:
        return len(self.upload.data)


def _message_ref(request: HttpRequest, ref: str) -> tuple[Message, str] | None:
    """`folder:uid` or `folder:uid:part` of a message of the reader's own."""
    pieces = ref.split(":")
    if len(pieces) not in (2, 3) or not pieces[0].isdigit() or not pieces[1].isdigit():
        return None
    message = selectors.message_of(request.mailbox.pk, int(pieces[0]), int(pieces[1]))
    if message is None:
        return None
    return message, pieces[2] if len(pieces) == 3 else ""


def _kept(request: HttpRequest, ref: str) -> Kept | None:
    found = _message_ref(request, ref)
    if found is None:
        return None
    message, path = found
    raw = selectors.blob_read(message.blob)
    if path == "message":
        name = (message.subject or "message")[:80] + ".eml"
        upload = compose.Upload(name, "message/rfc822", raw)
    else:
        part = mime.part_at(mime.parse(raw), path)
        if part is None or (part.is_multipart() and part.get_content_type() != "message/rfc822"):
            return None
        ctype = part.get_content_type()
        name = mime.part_filename(part) or mime.fallback_name(ctype, path)
        data = mime.part_bytes(part)
        upload = compose.Upload(name, ctype, data)
    return Kept(ref=ref, filename=upload.filename, size=human_size(len(upload.data)), upload=upload)


def _attachment_refs(message: Message, raw: bytes) -> list[str]:
    parsed = mime.read(raw)
    return [f"{message.folder_id}:{message.uid}:{a.path}" for a in parsed.attachments]


def _identity(request: HttpRequest, address: str) -> dict:
    """The chosen identity if the mailbox owns it, else the default one."""
    identities = selectors.identities_of(request.mailbox)
    for identity in identities:
        if identity["address"].lower() == address.strip().lower():
            return identity
    return identities[0]


def _with_signature(body: str, signature: str) -> str:
    """A new message's text with the signature under it, after the "-- " line (RFC 3676
    4.3), which app.js swaps when another identity is chosen."""
    if not signature.strip():
        return body
    return body + "\n\n-- \n" + signature.strip("\n") + "\n"


def _form_draft(request: HttpRequest) -> compose.Draft:
    post = request.POST
    identity = _identity(request, post.get("from", ""))
    return compose.Draft(
        from_address=identity["address"],
        from_name=identity["name"],
        html=post.get("html", "") if post.get("format") == "html" else "",
        to=post.get("to", ""),
        cc=post.get("cc", ""),
        bcc=post.get("bcc", ""),
        subject=post.get("subject", "")[:998].replace("\r", " ").replace("\n", " "),
        body=post.get("body", ""),
        in_reply_to=post.get("in_reply_to", "").strip(),
        references=" ".join(post.get("references", "").split()),
    )


def _render(request, draft, *, kept, errors=None, status=200, extra=None) -> HttpResponse:
    context = {
        "folders": folder_items(request.mailbox.pk),
        "draft": draft,
        "kept": kept,
        "errors": errors or {},
        "draft_uid": (extra or {}).get("draft_uid", ""),
        "answer_ref": (extra or {}).get("answer_ref", ""),
        "max_message": human_size(settings.MAILHOST_MAX_MESSAGE_SIZE),
        "attachment_limit": human_size(_attachment_limit()),
        "attachment_limit_octets": _attachment_limit(),
        "sender": request.mailbox,
        "identities": selectors.identities_of(request.mailbox),
    }
    return render(request, "webmail/compose.html", context, status=status)


def _attachment_limit() -> int:
    return compose.attachment_limit(settings.MAILHOST_MAX_MESSAGE_SIZE)


@require_http_methods(["GET", "POST"])
@mailbox_required
def compose_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _post(request)
    mailbox = request.mailbox
    draft = compose.Draft(to=request.GET.get("to", ""))
    kept: list[Kept] = []
    extra: dict = {}
    if request.GET.get("reply"):
        found = _message_ref(request, request.GET["reply"])
        if found is None:
            return HttpResponse("No such message.", status=404, content_type="text/plain")
        original = found[0]
        raw = selectors.blob_read(original.blob)
        draft = compose.reply_draft(
            mailbox=mailbox, original=original, raw=raw, reply_all=request.GET.get("all") == "1"
        )
        extra["answer_ref"] = f"{original.folder_id}:{original.uid}"
    elif request.GET.get("forward"):
        found = _message_ref(request, request.GET["forward"])
        if found is None:
            return HttpResponse("No such message.", status=404, content_type="text/plain")
        original = found[0]
        raw = selectors.blob_read(original.blob)
        inline = request.GET.get("mode") != "attach"
        draft = compose.forward_draft(original=original, raw=raw, inline=inline)
        refs = (
            _attachment_refs(original, raw)
            if inline
            else [f"{original.folder_id}:{original.uid}:message"]
        )
        kept = [k for k in (_kept(request, r) for r in refs) if k]
    elif request.GET.get("draft"):
        drafts = special_folder(mailbox.pk, SpecialUse.DRAFTS)
        uid = request.GET["draft"]
        message = selectors.message_get(drafts, int(uid)) if drafts and uid.isdigit() else None
        if message is None:
            return HttpResponse("No such draft.", status=404, content_type="text/plain")
        raw = selectors.blob_read(message.blob)
        draft = compose.draft_from_message(raw)
        kept = [k for k in (_kept(request, r) for r in _attachment_refs(message, raw)) if k]
        extra["draft_uid"] = str(message.uid)
    if not draft.from_address:
        identity = _identity(request, "")
        draft.from_address, draft.from_name = identity["address"], identity["name"]
        if not request.GET.get("draft"):
            draft.body = _with_signature(draft.body, identity["signature"])
    return _render(request, draft, kept=kept, extra=extra)


def _post(request: HttpRequest) -> HttpResponse:
    mailbox = request.mailbox
    action = request.POST.get("action", "send")
    draft = _form_draft(request)
    extra = {
        "draft_uid": request.POST.get("draft_uid", ""),
        "answer_ref": request.POST.get("answer_ref", ""),
    }
    kept = [k for k in (_kept(request, r) for r in request.POST.getlist("keep")) if k]
    uploads = [
        compose.Upload(
            filename=mime.part_filename_from_upload(f.name),
            content_type=compose.guess_type(f.name, f.content_type),
            data=f.read(),
        )
        for f in request.FILES.getlist("attachments")
    ]
    draft.attachments = [k.upload for k in kept] + uploads
    errors: dict[str, str] = {}
    recipients: list[str] = []
    for field_name in ("to", "cc", "bcc"):
        valid, invalid = compose.split_addresses(getattr(draft, field_name))
        if invalid:
            errors[field_name] = gettext("Not a valid address: %(addresses)s") % {
                "addresses": ", ".join(invalid)
            }
        recipients.extend(a for _, a in valid)
    recipients = list(dict.fromkeys(recipients))
    if action == "send" and not recipients and "to" not in errors:
        errors["to"] = gettext("Add at least one recipient.")
    if len(recipients) > settings.MAILHOST_MAX_RECIPIENTS:
        # Refused before the message is built: the email package takes about a millisecond
        # per address to fold a header (a reply-all to a hostile list has thousands).
        errors["to"] = gettext("At most %(count)s recipients per message.") % {
            "count": settings.MAILHOST_MAX_RECIPIENTS
        }
        if uploads:
            errors["notice"] = gettext("The new attachments were not kept; attach them again.")
        return _render(request, draft, kept=kept, errors=errors, status=400, extra=extra)
    sent_raw, message_id = compose.build(mailbox=mailbox, draft=draft, include_bcc=False)
    refused: list[compose.Upload] = []
    while len(sent_raw) > settings.MAILHOST_MAX_MESSAGE_SIZE and uploads:
        # Too large once encoded: leave out new files, largest first, until the rest fits;
        # those are kept (in a draft, by _failed) with everything else on the form.
        largest = max(uploads, key=lambda upload: len(upload.data))
        uploads.remove(largest)
        refused.append(largest)
        draft.attachments = [k.upload for k in kept] + uploads
        sent_raw, message_id = compose.build(mailbox=mailbox, draft=draft, include_bcc=False)
    if refused:
        names = ", ".join(f"{u.filename} ({human_size(len(u.data))})" for u in refused)
        errors["attachments"] = gettext(
            "Not attached: %(names)s. Attachments can total %(total)s: a message may be"
            " %(limit)s once encoded, and encoding makes files about a third larger. The rest"
            " of your message is kept."
        ) % {
            "names": names,
            "total": human_size(_attachment_limit()),
            "limit": human_size(settings.MAILHOST_MAX_MESSAGE_SIZE),
        }
    elif len(sent_raw) > settings.MAILHOST_MAX_MESSAGE_SIZE:
        errors["attachments"] = gettext(
            "The message is %(size)s; the limit is %(limit)s. Remove an attachment."
        ) % {
            "size": human_size(len(sent_raw)),
            "limit": human_size(settings.MAILHOST_MAX_MESSAGE_SIZE),
        }
    if action == "save" and "attachments" not in errors:
        return _save_draft(request, draft, kept, uploads, extra, errors)
    if errors:
        return _failed(request, draft, kept, uploads, extra, errors)
    copy_raw, _ = compose.build(
        mailbox=mailbox, draft=draft, include_bcc=True, message_id=message_id
    )
    sent = special_folder(mailbox.pk, SpecialUse.SENT)
    if sent is not None and not selectors.mailbox_quota(mailbox).fits(len(copy_raw)):
        errors["send"] = gettext(
            "Not sent: your mailbox is over quota, so the copy for Sent would not fit."
            " Delete some mail and send again."
        )
        return _failed(request, draft, kept, uploads, extra, errors)
    try:
        result = send(
            mailbox=mailbox,
            raw=sent_raw,
            recipients=recipients,
            client_ip=client_address(request),
        )
    except SendError as exc:
        errors["send"] = str(exc)
        if exc.field == "to":
            errors["to"] = gettext("Check the recipients.")
        return _failed(request, draft, kept, uploads, extra, errors)
    # Committed: the message is on its way. Now the copy, the answered mark, the draft.
    target = None
    if sent is not None:
        try:
            copy_raw = delivery_status.mark_refused(copy_raw, result.refused)
            copy = services.message_append(
                folder=sent, raw=copy_raw, flags=Flags.of(SystemFlag.SEEN)
            )
            target = reverse("webmail:message", args=[sent.pk, copy.uid])
        except QuotaExceeded:
            flash.warning(
                request, gettext("Sent, but your mailbox is full: no copy was kept in Sent.")
            )
    _mark_answered(request, extra["answer_ref"])
    _drop_draft(request, extra["draft_uid"])
    if result.refused:
        flash.warning(
            request, gettext("Not delivered to: %(problems)s.") % {"problems": refused_text(result)}
        )
    accepted = [r.address for r in result.accepted]
    flash.success(
        request, gettext("Message sent to %(recipients)s.") % {"recipients": ", ".join(accepted)}
    )
    return redirect(target or reverse("webmail:index"))


def _failed(request, draft, kept, uploads, extra, errors) -> HttpResponse:
    """Show the form again with everything on it; new uploads are kept in a draft."""
    if uploads:
        try:
            saved, kept = _store_draft(request, draft, extra)
            extra["draft_uid"] = str(saved.uid)
            errors.setdefault(
                "notice",
                gettext("Your attachments were saved with a draft; they are still attached."),
            )
        except MailhostError as exc:
            errors.setdefault(
                "notice",
                gettext("Attach the files again, they could not be kept (%(error)s).")
                % {"error": exc},
            )
    return _render(request, draft, kept=kept, errors=errors, status=400, extra=extra)


def _store_draft(request, draft, extra) -> tuple[Message, list[Kept]]:
    drafts = special_folder(request.mailbox.pk, SpecialUse.DRAFTS)
    if drafts is None:
        drafts = services.folder_create(
            mailbox=request.mailbox, name="Drafts", special_use=SpecialUse.DRAFTS
        )
    raw, _ = compose.build(mailbox=request.mailbox, draft=draft, include_bcc=True)
    flags = Flags.of(SystemFlag.DRAFT, SystemFlag.SEEN)
    previous = _draft_uid(drafts, extra.get("draft_uid", ""))
    saved = None
    if previous is not None:
        # The earlier version goes in the same transaction, its octets freed first: a
        # re-save no larger than it fits a mailbox at its limit, and no crash leaves both.
        with contextlib.suppress(NotFound):
            saved = services.message_replace(
                source=drafts, uid=previous, target=drafts, raw=raw, flags=flags
            )
    if saved is None:
        saved = services.message_append(folder=drafts, raw=raw, flags=flags)
    saved.folder = drafts
    kept = [k for k in (_kept(request, r) for r in _attachment_refs(saved, raw)) if k]
    return saved, kept


def _save_draft(request, draft, kept, uploads, extra, errors) -> HttpResponse:
    try:
        saved, _ = _store_draft(request, draft, extra)
    except MailhostError as exc:
        errors["send"] = gettext("The draft could not be saved: %(error)s") % {"error": exc}
        return _render(request, draft, kept=kept, errors=errors, status=400, extra=extra)
    flash.success(request, gettext("Draft saved."))
    return redirect(f"{reverse('webmail:compose')}?draft={saved.uid}")


def _draft_uid(drafts: Folder, uid_text: str) -> int | None:
    """The UID the form names when it is a draft in the Drafts folder, else None."""
    if not uid_text or not uid_text.isdigit():
        return None
    uid = int(uid_text)
    return uid if selectors.message_is_draft(drafts, uid) else None


def _drop_draft(request, uid_text: str) -> None:
    drafts = special_folder(request.mailbox.pk, SpecialUse.DRAFTS)
    if drafts is None:
        return
    uid = _draft_uid(drafts, uid_text)
    if uid is not None:
        services.messages_delete(folder=drafts, uids=[uid])


def _mark_answered(request, ref: str) -> None:
    found = _message_ref(request, ref) if ref else None
    if found is None:
        return
    message = found[0]
    folder = message.folder  # read with the message
    services.messages_mark_answered(folder=folder, uids=[message.uid])

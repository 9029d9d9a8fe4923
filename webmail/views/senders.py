"""The reader's own allow and block lists of senders (the admin keeps the domain's)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from mailboxes import selectors, senderlists, services
from mailboxes.exceptions import MailhostError
from webmail.auth import mailbox_required
from webmail.views.common import folder_items


@require_GET
@mailbox_required
def senders_view(request: HttpRequest) -> HttpResponse:
    entries = [
        {"entry": e, "pattern": senderlists.pattern_display(e.pattern)}
        for e in selectors.sender_list_entries(mailbox=request.mailbox)
    ]
    return render(
        request,
        "webmail/senders.html",
        {
            "folders": folder_items(request.mailbox.pk),
            "allowed": [e for e in entries if e["entry"].action == senderlists.ALLOW],
            "blocked": [e for e in entries if e["entry"].action == senderlists.BLOCK],
        },
    )


@require_POST
@mailbox_required
def sender_add(request: HttpRequest) -> HttpResponse:
    pattern = request.POST.get("pattern", "").strip()
    action = request.POST.get("action", "")
    if action not in (senderlists.ALLOW, senderlists.BLOCK):
        return HttpResponseBadRequest("unknown action")
    try:
        entry = services.sender_list_add(mailbox=request.mailbox, pattern=pattern, action=action)
    except MailhostError as exc:
        flash.error(request, f"Could not add “{pattern}”: {exc}")
        return redirect("webmail:senders")
    shown = senderlists.pattern_display(entry.pattern)
    if action == senderlists.ALLOW:
        flash.success(request, f"Mail from {shown} never goes to Junk now.")
    else:
        flash.success(request, f"Mail from {shown} goes to Junk now.")
    return redirect("webmail:senders")


@require_POST
@mailbox_required
def sender_remove(request: HttpRequest, entry_id: int) -> HttpResponse:
    if services.sender_list_remove(mailbox=request.mailbox, entry_id=entry_id):
        flash.success(request, "Removed from the list.")
    else:
        flash.error(request, "That entry is not on your lists.")
    return redirect("webmail:senders")

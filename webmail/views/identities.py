"""The addresses a mailbox writes as (its own and the aliases that deliver to it): the name
shown in From, the signature under new messages, which one compose starts with."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from mailboxes import selectors, services
from mailboxes.exceptions import MailhostError
from webmail.auth import mailbox_required
from webmail.views.common import folder_items


@require_http_methods(["GET", "POST"])
@mailbox_required
def identities_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        try:
            services.identity_save(
                mailbox=request.mailbox,
                address=post.get("address", ""),
                name=post.get("name", ""),
                signature=post.get("signature", ""),
                is_default=post.get("default") == "1",
            )
        except MailhostError as exc:
            flash.error(request, gettext("Not saved: %(error)s.") % {"error": exc})
        else:
            flash.success(
                request, gettext("Saved %(address)s.") % {"address": post.get("address", "")}
            )
        return redirect("webmail:identities")
    return render(
        request,
        "webmail/identities.html",
        {
            "folders": folder_items(request.mailbox.pk),
            "identities": selectors.identities_of(request.mailbox),
        },
    )

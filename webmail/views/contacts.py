"""The mailbox's address book: list, add, delete, vCard import and export."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailboxes import selectors, services, vcard
from webmail.auth import mailbox_required
from webmail.compose import split_addresses
from webmail.views.common import folder_items

MAX_IMPORT = 10 * 1024 * 1024  # one .vcf file


@require_http_methods(["GET", "POST"])
@mailbox_required
def contacts_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        valid, invalid = split_addresses(request.POST.get("email", ""))
        if invalid or not valid:
            flash.error(request, "Give a valid email address.")
        else:
            card = vcard.write(
                name=name or valid[0][0] or valid[0][1], emails=[a for _, a in valid]
            )
            services.contacts_put(mailbox=request.mailbox, cards=[card])
            flash.success(request, f"Added {card.name}.")
        return redirect("webmail:contacts")
    return render(
        request,
        "webmail/contacts.html",
        {
            "folders": folder_items(request.mailbox.pk),
            "contacts": selectors.contacts_of(request.mailbox),
        },
    )


@require_POST
@mailbox_required
def contacts_import(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        return HttpResponseBadRequest("no file")
    if upload.size > MAX_IMPORT:
        flash.error(request, "The file is larger than 10 MB.")
        return redirect("webmail:contacts")
    try:
        cards = vcard.parse(upload.read().decode("utf-8", "replace"))
    except vcard.VCardError as exc:
        flash.error(request, f"Not imported: {exc}.")
        return redirect("webmail:contacts")
    count = services.contacts_put(mailbox=request.mailbox, cards=cards)
    flash.success(request, f"Imported {count} contact{'s' if count != 1 else ''}.")
    return redirect("webmail:contacts")


@require_GET
@mailbox_required
def contacts_export(request: HttpRequest) -> HttpResponse:
    cards = selectors.contacts_of(request.mailbox)
    response = HttpResponse(
        "".join(c.vcard for c in cards), content_type="text/vcard; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="contacts.vcf"'
    return response


@require_POST
@mailbox_required
def contact_delete(request: HttpRequest, contact_id: int) -> HttpResponse:
    if services.contact_delete(mailbox=request.mailbox, contact_id=contact_id):
        flash.success(request, "Contact deleted.")
    return redirect("webmail:contacts")

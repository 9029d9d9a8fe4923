"""The mailbox's address book: list, add, edit, delete, vCard import and export."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext, ngettext
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
            flash.error(request, gettext("Give a valid email address."))
        else:
            card = vcard.write(
                name=name or valid[0][0] or valid[0][1], emails=[a for _, a in valid]
            )
            services.contacts_put(mailbox=request.mailbox, cards=[card])
            flash.success(request, gettext("Added %(name)s.") % {"name": card.name})
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
        flash.error(request, gettext("The file is larger than 10 MB."))
        return redirect("webmail:contacts")
    try:
        cards = vcard.parse(upload.read().decode("utf-8", "replace"))
    except vcard.VCardError as exc:
        flash.error(request, gettext("Not imported: %(error)s.") % {"error": exc})
        return redirect("webmail:contacts")
    count = services.contacts_put(mailbox=request.mailbox, cards=cards)
    flash.success(
        request,
        ngettext("Imported %(count)s contact.", "Imported %(count)s contacts.", count)
        % {"count": count},
    )
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
        flash.success(request, gettext("Contact deleted."))
    return redirect("webmail:contacts")


EDIT_BLANKS = 2  # empty email and phone inputs the form offers for new ones (no script needed)


def _form_fields(request: HttpRequest) -> tuple[vcard.Fields, list[str]]:
    """The posted form's values, and the entries that are not one valid address each."""
    emails, invalid = [], []
    for text in request.POST.getlist("email"):
        if not text.strip():
            continue
        valid, bad = split_addresses(text)
        if bad or len(valid) != 1:
            invalid.append(text.strip())
        else:
            emails.append(valid[0][1])
    phones = [p.strip() for p in request.POST.getlist("phone") if p.strip()]
    note = request.POST.get("note", "").replace("\r\n", "\n").strip("\n")
    fields = vcard.Fields(
        name=request.POST.get("name", "").strip(),
        given=request.POST.get("given", "").strip(),
        family=request.POST.get("family", "").strip(),
        emails=emails,
        phones=phones,
        note=note,
    )
    return fields, invalid


@require_http_methods(["GET", "POST"])
@mailbox_required
def contact_edit(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Edit one card's names, addresses, phone numbers and note; what the form does not show
    stays in the card as written (mailboxes.vcard.edit)."""
    contact = selectors.contact_by_id(request.mailbox, contact_id)
    if contact is None:
        raise Http404("no such contact")
    status = 200
    if request.method == "POST":
        fields, invalid = _form_fields(request)
        if invalid:
            flash.error(
                request,
                gettext("Not a valid email address: %(addresses)s.")
                % {"addresses": ", ".join(invalid)},
            )
            status = 400
        elif not (fields.name or fields.given or fields.family or fields.emails):
            flash.error(request, gettext("Give a name or an email address."))
            status = 400
        else:
            card = vcard.edit(contact.vcard, fields)
            if card.text != contact.vcard:  # unchanged: same card, same ETag, nothing to sync
                services.contacts_put(mailbox=request.mailbox, cards=[card])
            flash.success(request, gettext("Saved %(name)s.") % {"name": card.name})
            return redirect("webmail:contacts")
    else:
        fields = vcard.fields(contact.vcard)
    return render(
        request,
        "webmail/contact_edit.html",
        {
            "folders": folder_items(request.mailbox.pk),
            "contact": contact,
            "fields": fields,
            "emails": fields.emails + [""] * EDIT_BLANKS,
            "phones": fields.phones + [""] * EDIT_BLANKS,
        },
        status=status,
    )

"""The address book: vCard import and export, the page, suggestions from it."""

from __future__ import annotations

import pytest
import vobject
from django.core.files.uploadedfile import SimpleUploadedFile

from mailboxes import vcard
from mailboxes.models import Contact

pytestmark = pytest.mark.django_db

PHONE_EXPORT = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n"
    "N:Scully;Dana;Katherine;;\r\nFN:Dana Scully\r\n"
    "item1.EMAIL;type=INTERNET;type=pref:dana@fbi.example\r\n"
    "EMAIL;TYPE=HOME:dana.k@home.example\r\nTEL;type=CELL:+1 202 555 0100\r\n"
    "NOTE:Partner\\, since 1993\\nBasement office\r\nUID:dana-1\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:4.0\r\nN:Mulder;Fox;;;\r\nEMAIL:fox@fbi.ex\r\n ample\r\n"
    "END:VCARD\r\n"
)


def test_parse_reads_names_addresses_and_keeps_the_card():
    dana, fox = vcard.parse(PHONE_EXPORT)
    assert (dana.uid, dana.name, dana.emails) == (
        "dana-1",
        "Dana Scully",
        ["dana@fbi.example", "dana.k@home.example"],
    )
    assert "TEL;type=CELL:+1 202 555 0100" in dana.text  # what we do not read is kept
    assert fox.name == "Fox Mulder" and fox.emails == ["fox@fbi.example"]  # N, folded line
    assert fox.uid and f"UID:{fox.uid}" in fox.text  # a card without UID gets one


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("hello", "no BEGIN:VCARD found"),
        ("BEGIN:VCARD\r\nFN:x\r\n", "a card has no END:VCARD"),
    ],
)
def test_parse_refuses_what_is_no_vcard(text, error):
    with pytest.raises(vcard.VCardError, match=error):
        vcard.parse(text)


def test_import_export_round_trip_read_by_vobject(web, alice):
    upload = SimpleUploadedFile("phone.vcf", PHONE_EXPORT.encode(), content_type="text/vcard")
    response = web.post("/contacts/import/", {"file": upload})
    assert response.status_code == 302
    assert Contact.objects.filter(mailbox=alice).count() == 2
    web.post("/contacts/", {"name": "Walter Skinner", "email": "skinner@fbi.example"})
    page = web.get("/contacts/").content.decode()
    assert "Dana Scully" in page and "skinner@fbi.example" in page
    export = web.get("/contacts/export.vcf")
    assert export["Content-Type"].startswith("text/vcard")
    cards = list(vobject.readComponents(export.content.decode()))
    assert sorted(c.fn.value for c in cards) == ["Dana Scully", "Fox Mulder", "Walter Skinner"]
    dana = next(c for c in cards if c.fn.value == "Dana Scully")
    assert [e.value for e in dana.contents["email"]] == ["dana@fbi.example", "dana.k@home.example"]
    assert dana.note.value == "Partner, since 1993\nBasement office"
    # importing again replaces by UID, no duplicates
    again = SimpleUploadedFile("phone.vcf", export.content, content_type="text/vcard")
    web.post("/contacts/import/", {"file": again})
    assert Contact.objects.filter(mailbox=alice).count() == 3


def test_a_bad_file_is_refused_with_the_reason(web, alice):
    upload = SimpleUploadedFile("x.vcf", b"not a card", content_type="text/vcard")
    response = web.post("/contacts/import/", {"file": upload}, follow=True)
    assert "Not imported: no BEGIN:VCARD found." in response.content.decode()
    assert not Contact.objects.exists()


def test_suggestions_come_from_the_address_book_first(web, alice):
    web.post("/contacts/", {"name": "Dana Scully", "email": "dana@fbi.example"})
    assert web.get("/api/addresses/?q=scul").json()["addresses"] == [
        "Dana Scully <dana@fbi.example>"
    ]


def test_delete_only_ones_own_contact(web, alice, bob):
    from mailboxes import services

    services.contacts_put(mailbox=bob, cards=[vcard.write(name="B", emails=["b@x.example"])])
    theirs = Contact.objects.get(mailbox=bob)
    web.post(f"/contacts/{theirs.pk}/delete/")
    assert Contact.objects.filter(pk=theirs.pk).exists()
    web.post("/contacts/", {"name": "", "email": "Ann <ann@x.example>"})
    mine = Contact.objects.get(mailbox=alice)
    assert mine.name == "Ann"
    web.post(f"/contacts/{mine.pk}/delete/")
    assert not Contact.objects.filter(mailbox=alice).exists()


def test_edit_round_trip_keeps_the_card_as_written():
    """Saving the form unchanged gives the card back byte for byte; a change touches only
    the properties it changes (TYPE parameters, groups, photos and PRODID stay)."""
    dana = vcard.parse(PHONE_EXPORT)[0]
    shown = vcard.fields(dana.text)
    assert shown == vcard.Fields(
        name="Dana Scully",
        given="Dana",
        family="Scully",
        emails=["dana@fbi.example", "dana.k@home.example"],
        phones=["+1 202 555 0100"],
        note="Partner, since 1993\nBasement office",
    )
    assert vcard.edit(dana.text, shown).text == dana.text
    changed = vcard.Fields(
        name="Dana K. Scully",
        given="Dana K.",
        family="Scully",
        emails=["dana@fbi.example", "dks@fbi.example"],
        phones=["+1 202 555 0100", "+1 202 555 0199"],
        note="Partner; since 1993",
    )
    edited = vcard.edit(dana.text, changed)
    assert vcard.fields(edited.text) == changed
    assert (edited.uid, edited.name, edited.emails) == (
        "dana-1",
        "Dana K. Scully",
        ["dana@fbi.example", "dks@fbi.example"],
    )
    for kept in (
        "PRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n",
        "N:Scully;Dana K.;Katherine;;\r\n",  # the middle name stays
        "item1.EMAIL;type=INTERNET;type=pref:dana@fbi.example\r\n",
        "TEL;type=CELL:+1 202 555 0100\r\n",
    ):
        assert kept in edited.text
    assert "dana.k@home.example" not in edited.text
    card = vobject.readOne(edited.text)
    assert card.note.value == "Partner; since 1993"
    assert sorted(t.value for t in card.tel_list) == ["+1 202 555 0100", "+1 202 555 0199"]
    # vCard 4.0 numbers as URIs are shown as numbers; long lines are folded at 75 octets
    fox = vcard.parse(
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:fox\r\nFN:Fox\r\nTEL;VALUE=uri:tel:+1-555-0100\r\n"
        "END:VCARD\r\n"
    )[0]
    assert vcard.fields(fox.text).phones == ["+1-555-0100"]
    long_note = "Ünïcödé " * 20
    edited = vcard.edit(fox.text, vcard.Fields(name="Fox", phones=["+1-555-0100"], note=long_note))
    assert all(len(line.encode()) <= 75 for line in edited.text.split("\r\n"))
    assert "TEL;VALUE=uri:tel:+1-555-0100\r\n" in edited.text
    assert vcard.fields(edited.text).note == long_note


def test_edit_form_saves_and_carddav_sees_the_change(web, alice):
    web.post(
        "/contacts/import/",
        {"file": SimpleUploadedFile("c.vcf", PHONE_EXPORT.encode(), "text/vcard")},
    )
    dana = Contact.objects.get(mailbox=alice, uid="dana-1")
    page = web.get(f"/contacts/{dana.pk}/")
    assert page.status_code == 200
    assert page.context["emails"] == ["dana@fbi.example", "dana.k@home.example", "", ""]
    before, modseq = dana.vcard, dana.modseq
    unchanged = {
        "name": "Dana Scully",
        "given": "Dana",
        "family": "Scully",
        "email": ["dana@fbi.example", "dana.k@home.example", ""],
        "phone": ["+1 202 555 0100", ""],
        "note": "Partner, since 1993\r\nBasement office",  # a browser's textarea sends CRLF
    }
    assert web.post(f"/contacts/{dana.pk}/", unchanged).status_code == 302
    dana.refresh_from_db()
    assert dana.vcard == before and dana.modseq == modseq  # same card, same ETag
    bad = web.post(f"/contacts/{dana.pk}/", {**unchanged, "email": ["not an address"]})
    assert bad.status_code == 400 and "Not a valid email address" in bad.content.decode()
    changed = {**unchanged, "name": "Dana K. Scully", "email": ["dks@fbi.example"]}
    assert web.post(f"/contacts/{dana.pk}/", changed).status_code == 302
    dana.refresh_from_db()
    assert (dana.name, dana.email_list) == ("Dana K. Scully", ["dks@fbi.example"])
    exported = web.get("/contacts/export.vcf").content.decode()
    assert vobject.readOne(exported).fn.value in {"Dana K. Scully", "Fox Mulder"}
    assert "TEL;type=CELL:+1 202 555 0100" in exported


def test_edit_only_ones_own_contact(web, alice, bob):
    card = vcard.write(name="Bob's", emails=["b@x.example"], uid="b")
    from mailboxes import services

    services.contacts_put(mailbox=bob, cards=[card])
    theirs = Contact.objects.get(mailbox=bob)
    assert web.get(f"/contacts/{theirs.pk}/").status_code == 404
    assert web.post(f"/contacts/{theirs.pk}/", {"name": "mine"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Bob's"

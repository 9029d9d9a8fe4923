"""Editing a contact in Chromium: the form shows the card's names, every address and number
and the note; a change is saved into the card, and what the form does not show stays."""

from __future__ import annotations

import pytest
import vobject

from mailboxes import services, vcard
from mailboxes.models import Contact
from tests.webmail.axe import serious_violations
from tests.webmail.test_browser import browser, screenshot, signed_in, site  # noqa: F401
from tests.webmail.test_contacts import PHONE_EXPORT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_edit_a_contact(site, browser, alice):  # noqa: F811
    services.contacts_put(mailbox=alice, cards=vcard.parse(PHONE_EXPORT)[:1])
    context, page = signed_in(browser, site, "alice@example.org", "secret")
    page.goto(f"{site}/contacts/")
    page.get_by_role("link", name="Dana Scully").click()
    page.wait_for_selector("[data-test=contact-edit]")
    assert page.get_by_label("First name").input_value() == "Dana"
    assert page.get_by_label("Last name").input_value() == "Scully"
    emails = page.locator("[data-test=contact-email]")
    assert [emails.nth(i).input_value() for i in range(emails.count())] == [
        "dana@fbi.example", "dana.k@home.example", "", ""]  # fmt: skip
    assert page.get_by_label("Notes").input_value() == "Partner, since 1993\nBasement office"
    assert serious_violations(page) == []
    screenshot(page, "contact-edit-desktop")

    page.get_by_label("Display name").fill("Dana K. Scully")
    emails.nth(1).fill("")  # the home address goes
    emails.nth(2).fill("dks@fbi.example")
    page.locator("[data-test=contact-phone]").nth(1).fill("+1 202 555 0199")
    page.get_by_label("Notes").fill("Partner since 1993")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{site}/contacts/")
    assert page.get_by_role("link", name="Dana K. Scully").is_visible()
    assert (
        "dana@fbi.example, dks@fbi.example"
        in page.locator("table[data-test=contacts]").inner_text()
    )

    card = Contact.objects.get(mailbox=alice, uid="dana-1").vcard
    read = vobject.readOne(card)
    assert read.fn.value == "Dana K. Scully" and read.note.value == "Partner since 1993"
    assert sorted(t.value for t in read.tel_list) == ["+1 202 555 0100", "+1 202 555 0199"]
    assert "item1.EMAIL;type=INTERNET;type=pref:dana@fbi.example\r\n" in card  # kept as written
    assert "PRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n" in card
    assert page.js_errors == []
    context.close()

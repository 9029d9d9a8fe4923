"""Filters, Vacation and Forwarding pages (Django's test client, real services): what each
form writes as the mailbox's active Sieve script, and what happens to a hand-written one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailboxes import selectors, services, sieve
from webmail import filters

pytestmark = pytest.mark.django_db

RULE = {
    "name": "Newsletters",
    "match": "all",
    "field_0": "from",
    "operator_0": "contains",
    "value_0": "news@",
    "action_0": "move",
    "folder_0": "Archive",
    "stop": "on",
}


def active(mailbox):
    return selectors.sievescript_active(mailbox.pk)


def test_a_rule_becomes_the_active_script(web, alice):
    page = web.get("/settings/filters/")
    assert page.status_code == 200
    assert b"No rules yet." in page.content
    response = web.post("/settings/filters/add/", RULE)
    assert response.status_code == 302
    script = active(alice)
    assert script.name == filters.SCRIPT_NAME
    assert sieve.check(script.text) == []
    assert 'require ["fileinto"];' in script.text
    assert 'if header :contains "From" "news@" {\n  fileinto "Archive";\n  stop;\n}' in script.text
    page = web.get("/settings/filters/").content.decode()
    assert "Newsletters" in page and "From contains “news@”: Move to folder “Archive”" in page
    assert "fileinto &quot;Archive&quot;;" in page  # the generated script is shown


def test_conditions_and_actions_of_every_kind(web, alice):
    data = {
        "name": "Many",
        "match": "any",
        "field_0": "header",
        "header_0": "X-Spam-Flag",
        "operator_0": "is",
        "value_0": "YES",
        "field_1": "size",
        "operator_1": "over",
        "value_1": "2M",
        "field_2": "subject",
        "operator_2": "not_contains",
        "value_2": 'say "hi"',
        "action_0": "flag",
        "action_1": "forward",
        "argument_1": "bob@elsewhere.example",
        "action_2": "read",
    }
    assert web.post("/settings/filters/add/", data).status_code == 302
    text = active(alice).text
    assert sieve.check(text) == []
    assert (
        'if anyof (header :is "X-Spam-Flag" "YES",\n    size :over 2M,\n'
        '    not header :contains "Subject" "say \\"hi\\"") {\n'
        '  addflag "\\\\Flagged";\n  addflag "\\\\Seen";\n'
        '  redirect "bob@elsewhere.example";\n}'
    ) in text
    web.post(
        "/settings/filters/add/",
        {
            "field_0": "to",
            "operator_0": "is",
            "value_0": "x@example.org",
            "action_0": "reject",
            "argument_0": "Gone",
        },
    )
    web.post(
        "/settings/filters/add/",
        {"field_0": "subject", "operator_0": "matches", "value_0": "*sale*", "action_0": "discard"},
    )
    text = active(alice).text
    assert 'require ["fileinto", "imap4flags", "reject"];' not in text  # no fileinto here
    assert 'require ["imap4flags", "reject"];' in text
    assert 'reject "Gone";' in text and "discard;" in text
    assert sieve.check(text) == []
    assert len(filters.parse(text).rules) == 3


@pytest.mark.parametrize(
    "change, words",
    [
        ({"value_0": ""}, "Give at least one condition."),
        ({"action_0": ""}, "Give at least one action."),
        ({"folder_0": "Nowhere"}, "Choose one of your folders."),
        ({"field_0": "size", "operator_0": "over", "value_0": "lots"}, "A size is a number"),
        ({"field_0": "header", "header_0": "Bad:Name"}, "A header name is"),
        ({"action_0": "forward", "argument_0": "not an address"}, "is not an e-mail address"),
    ],
)
def test_bad_rules_are_refused_in_words(web, alice, change, words):
    response = web.post("/settings/filters/add/", {**RULE, **change}, follow=True)
    assert words in response.content.decode()
    assert active(alice) is None


def test_delete_a_rule(web, alice):
    web.post("/settings/filters/add/", RULE)
    web.post("/settings/filters/add/", {**RULE, "name": "Second", "value_0": "promo"})
    assert [r.name for r in filters.parse(active(alice).text).rules] == ["Newsletters", "Second"]
    assert web.post("/settings/filters/0/delete/").status_code == 302
    assert [r.name for r in filters.parse(active(alice).text).rules] == ["Second"]


def test_vacation_form_writes_a_dated_vacation_rule(web, alice):
    response = web.post(
        "/settings/vacation/",
        {
            "enabled": "on",
            "start": "2026-12-20",
            "end": "2027-01-03",
            "subject": "Away until January",
            "text": "I am away.\r\nBack on the 4th.",
        },
    )
    assert response.status_code == 302
    text = active(alice).text
    assert sieve.check(text) == []
    assert 'require ["date", "relational", "vacation"];' in text
    assert (
        'if allof (currentdate :value "ge" "date" "2026-12-20", '
        'currentdate :value "le" "date" "2027-01-03") {\n'
        '  vacation :days 7 :subject "Away until January" "I am away.\nBack on the 4th.";\n}'
    ) in text
    page = web.get("/settings/vacation/").content.decode()
    assert 'value="2026-12-20"' in page and "Away until January" in page and "checked" in page
    # Off again: the rule goes.
    web.post("/settings/vacation/", {"subject": "Away until January", "text": "x"})
    assert "vacation" not in active(alice).text.split("\n", 2)[2]


@pytest.mark.parametrize(
    "data, words",
    [
        ({"enabled": "on", "start": "soon", "text": "x"}, "is not a date"),
        ({"enabled": "on", "start": "2026-12-20", "end": "2026-12-01", "text": "x"}, "before"),
        ({"enabled": "on", "text": ""}, "Write the reply."),
    ],
)
def test_vacation_form_errors(web, alice, data, words):
    assert words in web.post("/settings/vacation/", data).content.decode()
    assert active(alice) is None


def test_forwarding_keeps_a_copy_and_shares_the_script(web, alice):
    web.post("/settings/filters/add/", RULE)
    assert web.post("/settings/forwarding/", {"address": "me@elsewhere.example"}).status_code == 302
    web.post("/settings/vacation/", {"enabled": "on", "subject": "Away", "text": "Away."})
    text = active(alice).text
    assert sieve.check(text) == []
    assert 'redirect :copy "me@elsewhere.example";' in text
    assert 'vacation :days 7 :subject "Away" "Away.";' in text
    assert 'fileinto "Archive";' in text
    assert 'value="me@elsewhere.example"' in web.get("/settings/forwarding/").content.decode()
    assert (
        "not an e-mail address"
        in web.post("/settings/forwarding/", {"address": "nobody"}).content.decode()
    )
    web.post("/settings/forwarding/", {"address": ""})
    assert "redirect" not in active(alice).text.split("\n", 2)[2]


HAND_WRITTEN = 'require "fileinto";\n# my own\nif address :domain "from" "example.com" {\n  fileinto "Archive";\n}\n'


def test_a_hand_written_script_is_shown_as_it_is_and_kept(web, alice):
    services.sievescript_put(mailbox=alice, name="mine", text=HAND_WRITTEN, activate=True)
    page = web.get("/settings/filters/").content.decode()
    assert 'data-test="hand-written"' in page
    assert "address :domain &quot;from&quot; &quot;example.com&quot;" in page  # in the textarea
    assert 'data-test="generated"' not in page
    # Saving a vacation reply makes the webmail's script active; "mine" stays, inactive.
    web.post("/settings/vacation/", {"enabled": "on", "subject": "Away", "text": "Away."})
    scripts = {s.name: s for s in selectors.sievescripts_of(alice)}
    assert scripts["mine"].text == HAND_WRITTEN and not scripts["mine"].active
    assert scripts[filters.SCRIPT_NAME].active


def test_an_edited_generated_script_counts_as_hand_written(web, alice):
    web.post("/settings/filters/add/", RULE)
    text = active(alice).text.replace('fileinto "Archive";', 'fileinto "Junk";')
    response = web.post("/settings/filters/script/", {"script": text.replace("\n", "\r\n")})
    assert response.status_code == 302
    assert active(alice).text == text  # kept as written (line ends as the webmail stores them)
    assert filters.parse(text) is None
    assert 'data-test="hand-written"' in web.get("/settings/filters/").content.decode()


def test_an_invalid_script_edit_is_refused(web, alice):
    web.post("/settings/filters/add/", RULE)
    before = active(alice).text
    response = web.post("/settings/filters/script/", {"script": "if true {\n keep;\n"})
    assert response.status_code == 400
    assert "The script was not saved: line" in response.content.decode()
    assert active(alice).text == before


def test_the_pages_need_a_login(client, alice):
    for path in ("/settings/filters/", "/settings/vacation/", "/settings/forwarding/"):
        assert client.get(path).status_code == 302


def test_generate_and_parse_round_trip():
    settings = filters.FilterSettings(
        rules=(
            filters.Rule(
                "a",
                (filters.Condition("header", "contains", 'x"\\y', header="List-Id"),),
                (filters.Action("move", "Lists/Rust"), filters.Action("flag")),
                match_all=False,
                stop=False,
            ),
        ),
        vacation=filters.Vacation(True, "S", "T\nU", "2026-01-01", ""),
        forwarding=filters.Forwarding("f@example.net", keep=False),
    )
    text = filters.generate(settings)
    assert filters.parse(text) == settings
    assert filters.parse(text.replace("\n", "\r\n")) == settings
    assert filters.parse(text + "keep;\n") is None
    assert filters.parse("keep;\n") is None
    assert sieve.check(text) == []


def test_a_rule_made_in_the_webmail_files_delivered_mail(web, alice):
    from mailboxes.models import Message
    from tests.webmail.conftest import make_raw

    web.post(
        "/settings/filters/add/",
        {**RULE, "action_1": "flag", "action_2": "read"},
    )
    services.message_deliver(
        raw=make_raw(sender="News <news@list.example>", subject="Weekly"),
        recipients=["alice@example.org"],
        mail_from="news@list.example",
    )
    services.message_deliver(
        raw=make_raw(sender="Carol <carol@remote.example>", subject="Lunch"),
        recipients=["alice@example.org"],
        mail_from="carol@remote.example",
    )
    weekly = Message.objects.get(subject="Weekly")
    assert (weekly.folder.name, weekly.flagged, weekly.seen) == ("Archive", True, True)
    assert Message.objects.get(subject="Lunch").folder.name == "INBOX"


def test_edit_and_reorder_rules(web, alice):
    web.post("/settings/filters/add/", RULE)
    web.post("/settings/filters/add/", {**RULE, "name": "Second", "value_0": "promo"})
    page = web.get("/settings/filters/?edit=1").content.decode()
    assert "Edit rule “Second”" in page
    assert 'name="index" value="1"' in page and 'value="promo"' in page
    assert '<option value="Archive" selected>' in page
    response = web.post(
        "/settings/filters/add/",
        {**RULE, "index": "1", "name": "Promotions", "value_0": "promo", "folder_0": "Junk"},
    )
    assert response.status_code == 302
    rules = filters.parse(active(alice).text).rules
    assert [(r.name, r.actions[0].argument) for r in rules] == [
        ("Newsletters", "Archive"),
        ("Promotions", "Junk"),
    ]
    assert web.post("/settings/filters/1/move/", {"direction": "up"}).status_code == 302
    assert [r.name for r in filters.parse(active(alice).text).rules] == [
        "Promotions",
        "Newsletters",
    ]
    web.post("/settings/filters/0/move/", {"direction": "down"})
    assert [r.name for r in filters.parse(active(alice).text).rules] == [
        "Newsletters",
        "Promotions",
    ]
    assert web.post("/settings/filters/1/move/", {"direction": "down"}).status_code == 404
    assert web.post("/settings/filters/add/", {**RULE, "index": "7"}).status_code == 404


def test_stored_scripts_can_be_activated_turned_off_and_deleted(web, alice):
    services.sievescript_put(mailbox=alice, name="mine", text=HAND_WRITTEN, activate=True)
    web.post("/settings/vacation/", {"enabled": "on", "subject": "Away", "text": "Away."})
    page = web.get("/settings/filters/").content.decode()
    assert 'data-script="mine"' in page and 'data-script="webmail"' in page
    web.post("/settings/filters/scripts/activate/", {"name": "mine"})
    assert active(alice).name == "mine"
    response = web.post("/settings/filters/scripts/delete/", {"name": "mine"}, follow=True)
    assert "Not deleted:" in response.content.decode()  # the active one stays
    web.post("/settings/filters/scripts/activate/", {"name": ""})
    assert active(alice) is None
    web.post("/settings/filters/scripts/delete/", {"name": "mine"})
    assert [s.name for s in selectors.sievescripts_of(alice)] == ["webmail"]
    response = web.post("/settings/filters/scripts/activate/", {"name": "gone"}, follow=True)
    assert "Not changed:" in response.content.decode()


def test_another_mailboxs_scripts_are_out_of_reach(web, alice, bob):
    services.sievescript_put(mailbox=bob, name="bobs", text=HAND_WRITTEN, activate=True)
    services.sievescript_put(mailbox=bob, name="spare", text="keep;\n")
    web.post("/settings/filters/scripts/activate/", {"name": "spare"})
    web.post("/settings/filters/scripts/delete/", {"name": "spare"})
    web.post("/settings/filters/script/", {"script": "discard;\n"})
    assert [(s.name, s.active) for s in selectors.sievescripts_of(bob)] == [
        ("bobs", True),
        ("spare", False),
    ]
    assert "bobs" not in web.get("/settings/filters/").content.decode()
    assert active(alice).text == "discard;\n"  # alice's own, named for her


MESSAGE = (
    b"From: Bob <bob@remote.test>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Weekly report\r\n"
    b"Message-ID: <report.1@remote.test>\r\n"
    b"\r\n"
    b"Numbers attached.\r\n"
)


def test_the_webmail_vacation_and_forwarding_act_at_delivery(web, alice):
    """The scripts these pages write, run by the delivery agent through port 25's path: a
    vacation reply to the sender (within its dates), and a copy to the forwarding address
    with the message kept."""
    import email
    from email import policy

    from django.utils import timezone

    from delivery.accept import message_accept
    from delivery.models import OutboundMessage
    from mailboxes.models import Message
    from mailboxes.selectors import blob_read

    today = timezone.localdate()
    web.post(
        "/settings/vacation/",
        {
            "enabled": "on",
            "start": (today - timedelta(days=1)).isoformat(),
            "end": (today + timedelta(days=1)).isoformat(),
            "subject": "Out of office",
            "text": "Back soon.",
        },
    )
    web.post("/settings/forwarding/", {"address": "alice@elsewhere.test"})
    result = message_accept(
        raw=MESSAGE, mail_from="bob@remote.test", recipients=["alice@example.org"]
    )
    assert result.accepted
    assert Message.objects.get(subject="Weekly report").folder.name == "INBOX"
    spooled = {
        tuple(r.address for r in out.recipients.all()): out
        for out in OutboundMessage.objects.prefetch_related("recipients")
    }
    assert set(spooled) == {("bob@remote.test",), ("alice@elsewhere.test",)}
    reply = email.message_from_bytes(
        blob_read(spooled[("bob@remote.test",)].blob), policy=policy.default
    )
    assert reply["Subject"] == "Out of office" and "Back soon." in reply.get_content()
    assert blob_read(spooled[("alice@elsewhere.test",)].blob).endswith(MESSAGE)


def test_a_vacation_outside_its_dates_stays_silent(web, alice):
    from django.utils import timezone

    from delivery.accept import message_accept
    from delivery.models import OutboundMessage

    start = (timezone.localdate() + timedelta(days=3)).isoformat()
    web.post(
        "/settings/vacation/",
        {"enabled": "on", "start": start, "subject": "Away", "text": "Later."},
    )
    message_accept(raw=MESSAGE, mail_from="bob@remote.test", recipients=["alice@example.org"])
    assert OutboundMessage.objects.count() == 0

"""Vacation replies, reject notices and notifications (delivery.autoreply): who is never
answered (RFC 5230 4.5/4.6, RFC 3834 2) and what a reply carries."""

from __future__ import annotations

import email
from email import policy

import pytest

from delivery import autoreply

ME = ["alice@example.org"]


def message(*extra: str, to: str = "Alice <alice@example.org>") -> bytes:
    head = [
        "From: Bob <bob@remote.test>",
        f"To: {to}",
        "Subject: Lunch?",
        "Message-ID: <lunch.1@remote.test>",
        "References: <older@remote.test>",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\nTomorrow at noon?\r\n").encode()


def test_an_ordinary_message_to_me_is_answered():
    assert (
        autoreply.vacation_refusal(message(), mail_from="bob@remote.test", user_addresses=ME) == ""
    )


@pytest.mark.parametrize(
    ("raw", "sender", "why"),
    [
        (message(), "", "null sender"),
        (message(), "MAILER-DAEMON@remote.test", "mail system"),
        (message(), "owner-list@remote.test", "mail system"),
        (message(), "list-request@remote.test", "mail system"),
        (message("Auto-Submitted: auto-replied"), "bob@remote.test", "Auto-Submitted"),
        (message("Precedence: bulk"), "bob@remote.test", "Precedence: bulk"),
        (message("Precedence: junk"), "bob@remote.test", "Precedence: junk"),
        (message("List-Id: <news.remote.test>"), "bob@remote.test", "list-id"),
        (message("List-Unsubscribe: <mailto:x@remote.test>"), "bob@remote.test", "list-unsub"),
        (message(to="everyone@remote.test"), "bob@remote.test", "no address of the user"),
        (message(), "Alice@Example.org", "sender is the user"),
    ],
)
def test_never_answered(raw, sender, why):
    assert why in autoreply.vacation_refusal(raw, mail_from=sender, user_addresses=ME)


def test_auto_submitted_no_and_cc_are_answered():
    raw = message("Auto-Submitted: no", "Cc: alice@example.org", to="x@remote.test")
    assert autoreply.vacation_refusal(raw, mail_from="bob@remote.test", user_addresses=ME) == ""


def test_the_reply_carries_rfc3834_fields_and_threads():
    reply = autoreply.vacation_reply(
        message(),
        from_address="alice@example.org",
        to="bob@remote.test",
        subject="",
        reason="I am away until Monday. Grüße",
        mime=False,
    )
    parsed = email.message_from_bytes(reply, policy=policy.default)
    assert parsed["Auto-Submitted"].startswith("auto-replied")
    assert parsed["Subject"] == "Auto: Lunch?"
    assert parsed["To"] == "bob@remote.test"
    assert parsed["In-Reply-To"] == "<lunch.1@remote.test>"
    assert parsed["References"] == "<older@remote.test> <lunch.1@remote.test>"
    assert "Grüße" in parsed.get_content()


def test_no_header_field_can_be_injected_through_subject_or_from():
    # A script's `vacation :subject "Re: ${subject}"` with a Subject whose encoded word holds
    # CR LF: the reply keeps one Subject line and no Bcc of the sender's choosing.
    reply = autoreply.vacation_reply(
        message(),
        from_address="alice@example.org\r\nX-Injected: 1",
        to="bob@remote.test",
        subject="Re: hi\r\nBcc: victim@target.example\r\n\r\nbody",
        reason="Away.",
        mime=False,
    )
    parsed = email.message_from_bytes(reply, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert parsed["Subject"] == "Re: hi Bcc: victim@target.example body"
    assert parsed.get_content().strip() == "Away."
    notice = autoreply.notify_message(
        message(),
        from_address="alice@example.org",
        to="alice@mobile.test",
        subject="New\r\nBcc: victim@target.example",
        message="",
        importance="2",
    )
    assert email.message_from_bytes(notice, policy=policy.default)["Bcc"] is None


def test_the_handle_depends_on_the_text_unless_given():
    one = autoreply.vacation_handle(handle="", subject="", from_="", reason="a", mime=False)
    two = autoreply.vacation_handle(handle="", subject="", from_="", reason="b", mime=False)
    assert one != two
    assert (
        autoreply.vacation_handle(handle="h", subject="", from_="", reason="a", mime=False) == "h"
    )


def test_the_reject_notice_is_an_rfc3798_mdn():
    mdn = autoreply.reject_mdn(
        message(), mail_from="bob@remote.test", recipient="alice@example.org", reason="Not here."
    )
    parsed = email.message_from_bytes(mdn, policy=policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "disposition-notification"
    text, report, returned = parsed.iter_parts()
    assert "Not here." in text.get_content()
    fields = report.get_payload()[0] if report.is_multipart() else report
    body = mdn.decode()
    assert "Disposition: automatic-action/MDN-sent-automatically; deleted" in body
    assert "Final-Recipient: rfc822; alice@example.org" in body
    assert "Original-Message-ID: <lunch.1@remote.test>" in body
    assert fields is not None and returned.get_content_type() == "text/rfc822-headers"
    assert parsed["Auto-Submitted"].startswith("auto-replied")

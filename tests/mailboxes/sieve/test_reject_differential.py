"""The notice a reject sends (RFC 5429 2.1: an MDN, RFC 3798), against Pigeonhole's: both
reduced to their structure (report type, parts, the MDN fields, where the reason goes, who gets
it). delivery.autoreply.reject_mdn is what the MDA spools; `sieve-test -e` prints Pigeonhole's.
"""

from __future__ import annotations

import email
import email.utils
from email import policy

import pytest

from delivery import autoreply

from . import pigeonhole

CASE = pigeonhole.load_case(pigeonhole.CASES / "reject-basic.sieve")
REASON = "I do not accept messages from you."

# Pigeonhole 0.5.19's notice for reject-basic, reduced by structure() (its third part is
# message/rfc822 holding the header, ours text/rfc822-headers: RFC 3798 3 allows both, and
# RFC 6522 names text/rfc822-headers for a header alone; both count as "the original header").
EXPECTED = {
    "to": "bob@remote.example",
    "auto-submitted": "auto-replied",
    "content-type": "multipart/report",
    "report-type": "disposition-notification",
    "parts": ["text/plain", "message/disposition-notification", "the original header"],
    "reason in text": True,
    "final-recipient": "rfc822; alice@example.org",
    "original-message-id": "<meeting-1@remote.example>",
    "disposition": "automatic-action/MDN-sent-automatically; deleted",
    "original subject returned": True,
}


def structure(notice: bytes) -> dict:
    parsed = email.message_from_bytes(notice, policy=policy.compat32)
    parts = parsed.get_payload()
    kinds = [part.get_content_type() for part in parts]
    kinds = [
        "the original header" if k in ("message/rfc822", "text/rfc822-headers") else k
        for k in kinds
    ]
    # compat32 reads a message/disposition-notification body as one header block
    fields = {name.lower(): value for name, value in parts[1].get_payload()[0].items()}
    return {
        "to": email.utils.parseaddr(parsed["To"])[1],
        "auto-submitted": parsed["Auto-Submitted"].split()[0],
        "content-type": parsed.get_content_type(),
        "report-type": parsed.get_param("report-type"),
        "parts": kinds,
        "reason in text": REASON in parts[0].get_payload(decode=True).decode("utf-8"),
        "final-recipient": fields.get("final-recipient"),
        "original-message-id": fields.get("original-message-id"),
        "disposition": fields.get("disposition"),
        "original subject returned": b"Subject: Project meeting tomorrow" in notice,
    }


def test_our_notice():
    notice = autoreply.reject_mdn(
        CASE.raw, mail_from=CASE.mail_from, recipient=CASE.rcpt_to, reason=REASON
    )
    assert structure(notice) == EXPECTED


def test_pigeonhole_notice():
    if not pigeonhole.sieve_test_path():
        pytest.skip("sieve-test is not installed (Debian package dovecot-sieve)")
    ph = pigeonhole.Pigeonhole()
    try:
        notice = ph.reject_notice(CASE)
    finally:
        ph.close()
    assert structure(notice) == EXPECTED

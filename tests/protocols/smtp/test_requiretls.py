"""REQUIRETLS (RFC 8689 4.1) on our listeners: offered in EHLO only once TLS protects the
session, the MAIL parameter refused without TLS, kept with the spool entry when taken."""

from __future__ import annotations

import pytest

from delivery.models import OutboundMessage
from protocols.smtp import replies
from tests.protocols.smtp.test_submission import MESSAGE, msa, tls_login  # noqa: F401
from tests.support.smtp import Transcript

pytestmark = pytest.mark.django_db(transaction=True)


def test_offered_only_under_tls_and_kept_with_the_spool_entry(msa):  # noqa: F811
    assert "250-REQUIRETLS" not in msa.ehlo()
    tls_login(msa)
    assert "250-REQUIRETLS" in msa.ehlo()
    msa.command("MAIL FROM:<alice@example.org> REQUIRETLS=yes", replies.S501_REQUIRETLS_VALUE)
    msa.command("MAIL FROM:<alice@example.org> REQUIRETLS", replies.S250_SENDER_OK)
    msa.command("RCPT TO:<friend@elsewhere.example>", replies.S250_RECIPIENT_OK)
    msa.command("DATA", replies.S354_START_DATA)
    msa.send(MESSAGE + b".\r\n")
    assert msa.line().startswith("250 2.0.0 OK queued as ")
    msa.command("MAIL FROM:<alice@example.org>", replies.S250_SENDER_OK)
    msa.command("RCPT TO:<other@elsewhere.example>", replies.S250_RECIPIENT_OK)
    msa.command("DATA", replies.S354_START_DATA)
    msa.send(MESSAGE + b".\r\n")
    assert msa.line().startswith("250 2.0.0 OK queued as ")
    flags = dict(OutboundMessage.objects.values_list("recipients__address", "require_tls"))
    assert flags == {"friend@elsewhere.example": True, "other@elsewhere.example": False}


def test_refused_without_tls_on_port_25(smtp_ports, hosted):
    mta = Transcript(smtp_ports["smtp"])
    try:
        assert "250-REQUIRETLS" not in mta.ehlo()
        mta.command("MAIL FROM:<x@remote.example> REQUIRETLS", replies.S530_REQUIRETLS_NEEDS_TLS)
        mta.command("MAIL FROM:<x@remote.example>", replies.S250_SENDER_OK)  # session usable
    finally:
        mta.close()

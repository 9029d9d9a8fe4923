"""DMARC (RFC 7489) on port 25: alignment through SPF and through DKIM, the policies, and what
SMTP does with them (Junk for quarantine, 550 5.7.1 for reject with nothing stored)."""

from __future__ import annotations

import logging
import smtplib

import pytest

from delivery import dns as delivery_dns
from delivery.inbound import AuthResults, authenticate
from delivery.inbound.dmarc import org_domain, parse_record
from mailboxes.models import Message
from mailboxes.selectors import blob_read, folder_get
from mailhost import runner
from protocols.smtp import replies
from tests.support.dkimkeys import publish, sign
from tests.support.servers import running

CLIENT = "192.0.2.10"


def message(from_domain: str, body: bytes = b"Hello.\r\n") -> bytes:
    return (
        f"From: Jane <jane@{from_domain}>\r\n"
        "To: bob@example.org\r\n"
        "Subject: hello\r\n"
        "Date: Thu, 03 Dec 2026 05:00:00 +0000\r\n"
        f"Message-ID: <1@{from_domain}>\r\n"
        "\r\n"
    ).encode() + body


@pytest.fixture
def zone(dns_server, settings):
    settings.MAILHOST_HOSTNAME = "mx.receiver.test"
    settings.MAILHOST_ARC_TRUSTED_SEALERS = ()
    dns_server.add_txt("origin.test", "v=spf1 ip4:192.0.2.10 ip4:127.0.0.1 -all")
    dns_server.add_txt("bounces.origin.test", "v=spf1 ip4:192.0.2.10 ip4:127.0.0.1 -all")
    dns_server.add_txt("esp.test", "v=spf1 ip4:192.0.2.10 ip4:127.0.0.1 -all")
    publish(dns_server, "origin.test")
    return dns_server


def republish(zone, name: str, text: str) -> None:
    """Replace a TXT record, and forget the resolver's cached answer."""
    zone.records[name]["TXT"] = []
    zone.add_txt(name, text)
    delivery_dns.forget_resolvers()


def check(raw: bytes, mail_from: str, client_ip: str = CLIENT):
    return authenticate(raw=raw, client_ip=client_ip, helo="mail.esp.test", mail_from=mail_from)


def test_pass_through_spf_alignment(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    got = check(message("origin.test"), "jane@origin.test").dmarc
    assert (got.result, got.spf_aligned, got.dkim_aligned) == ("pass", True, False)
    # Relaxed (the default): the envelope's subdomain shares the organizational domain.
    got = check(message("origin.test"), "b@bounces.origin.test").dmarc
    assert (got.result, got.disposition) == ("pass", "none")


def test_strict_spf_alignment_needs_the_same_name(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject; aspf=s")
    got = check(message("origin.test"), "b@bounces.origin.test").dmarc
    assert (got.result, got.disposition) == ("fail", "reject")


def test_pass_through_dkim_alignment(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    # Sent through an ESP: SPF passes for esp.test (not aligned), the signature is origin's.
    results = check(sign(message("origin.test"), "origin.test"), "bounce@esp.test")
    got = results.dmarc
    assert (got.result, got.spf_aligned, got.dkim_aligned) == ("pass", False, True)
    assert "dmarc=pass (p=reject dis=none) header.from=origin.test" in results.header_value()
    # A subdomain signature aligns relaxed, not strict.
    publish(zone, "mail.origin.test")
    relaxed = sign(message("origin.test"), "mail.origin.test")
    assert check(relaxed, "bounce@esp.test").dmarc.result == "pass"
    republish(zone, "_dmarc.origin.test", "v=DMARC1; p=reject; adkim=s")
    assert check(relaxed, "bounce@esp.test").dmarc.result == "fail"


def test_fail_with_p_none_is_only_recorded(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=none; rua=mailto:d@origin.test")
    results = check(message("origin.test"), "jane@origin.test", client_ip="198.51.100.7")
    got = results.dmarc
    assert (got.result, got.policy, got.disposition) == ("fail", "none", "none")
    assert "dmarc=fail (p=none dis=none) header.from=origin.test" in results.header_value()


def test_policies_pct_and_testing(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=quarantine")
    spoof = message("origin.test")
    got = check(spoof, "x@spammer.test").dmarc
    assert (got.result, got.disposition) == ("fail", "quarantine")
    # pct=0 (and DMARCbis t=y): the next policy down (RFC 7489 6.6.4).
    republish(zone, "_dmarc.origin.test", "v=DMARC1; p=reject; pct=0")
    got = check(spoof, "x@spammer.test").dmarc
    assert (got.policy, got.disposition, got.override) == ("reject", "quarantine", "sampled_out")
    republish(zone, "_dmarc.origin.test", "v=DMARC1; p=quarantine; t=y")
    assert check(spoof, "x@spammer.test").dmarc.disposition == "none"


def test_subdomain_policy_from_the_organizational_domain(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=none; sp=reject; np=quarantine")
    zone.add("news.origin.test", "A", "192.0.2.99")
    got = check(message("news.origin.test"), "x@spammer.test").dmarc
    assert (got.result, got.policy, got.org_domain) == ("fail", "reject", "origin.test")
    # DMARCbis np=: a From domain that does not exist at all.
    got = check(message("ghost.origin.test"), "x@spammer.test").dmarc
    assert (got.policy, got.disposition) == ("quarantine", "quarantine")


def test_no_record_and_broken_records(zone):
    assert check(message("origin.test"), "x@spammer.test").dmarc.result == "none"
    republish(zone, "_dmarc.origin.test", "v=DMARC1; p=sometimes")
    assert check(message("origin.test"), "x@spammer.test").dmarc.result == "permerror"


def test_a_dns_failure_is_a_temperror_and_never_a_reject(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    zone.servfail.add("_dmarc.origin.test")
    got = check(message("origin.test"), "x@spammer.test").dmarc
    assert (got.result, got.disposition) == ("temperror", "none")
    # The record answers but SPF could not be checked: no proof of forgery either.
    zone.servfail.discard("_dmarc.origin.test")
    zone.servfail.add("spammer.test")
    delivery_dns.forget_resolvers()
    got = check(message("origin.test"), "x@spammer.test").dmarc
    assert got.result == "fail"  # an SPF temperror for another domain could not align anyway
    got = check(message("origin.test"), "x@origin.test", client_ip="198.51.100.7").dmarc
    assert got.result == "fail"
    zone.servfail.add("origin.test")
    delivery_dns.forget_resolvers()
    got = check(message("origin.test"), "x@origin.test", client_ip="198.51.100.7").dmarc
    assert (got.result, got.disposition) == ("temperror", "none")


def test_the_strictest_of_several_from_domains(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    raw = message("origin.test").replace(
        b"From: Jane <jane@origin.test>", b"From: a@esp.test, Jane <jane@origin.test>"
    )
    got = check(raw, "bounce@esp.test").dmarc
    assert (got.domain, got.disposition) == ("origin.test", "reject")


def test_reasons_in_plain_words(zone):
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    results = check(message("origin.test"), "x@spammer.test")
    assert (
        "DMARC_FAIL_REJECT",
        "claims to be from origin.test but origin.test's DMARC policy rejects it",
    ) in results.reasons()


def test_organizational_domains_come_from_the_public_suffix_list():
    assert org_domain("mail.example.co.uk") == "example.co.uk"
    assert org_domain("a.b.example.com") == "example.com"
    assert org_domain("co.uk") == "co.uk"
    assert parse_record("v=DMARC1; p=quarantine; sp=none; pct=50").sp == "none"


# --- over SMTP ------------------------------------------------------------------------------


@pytest.fixture
def receiver(live_settings, transactional_db, zone, make_mailbox):
    bob = make_mailbox("bob@example.org")
    live_settings.MAILHOST_HOSTNAME = "mx.receiver.test"
    with running(runner.SMTP) as ports:
        yield bob, ports["smtp"]


def send(port: int, mail_from: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.esp.test")
        client.sendmail(mail_from, ["bob@example.org"], raw)


def stored(bob, folder: str) -> list[bytes]:
    return [
        blob_read(m.blob)
        for m in Message.objects.filter(folder=folder_get(bob, folder)).order_by("uid")
    ]


def test_smtp_pass_files_into_inbox_with_authentication_results(receiver, zone, caplog):
    caplog.set_level(logging.INFO, logger="mailhost.smtp")
    bob, port = receiver
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    send(port, "jane@origin.test", sign(message("origin.test"), "origin.test"))
    [line] = [r.getMessage() for r in caplog.records if "smtp accepted" in r.getMessage()]
    assert line.endswith(" spf=pass dkim=pass dmarc=pass arc=none disposition=none")
    [raw] = stored(bob, "INBOX")
    assert raw.startswith(b"Received: ")
    head = raw.split(b"\r\n\r\n")[0].decode()
    assert "Authentication-Results: mx.receiver.test;" in head
    for words in ("dkim=pass header.d=origin.test", "spf=pass", "dmarc=pass"):
        assert words in head


def test_smtp_quarantine_goes_to_junk(receiver, zone):
    bob, port = receiver
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=quarantine")
    send(port, "x@spammer.test", message("origin.test"))
    assert stored(bob, "INBOX") == []
    [raw] = stored(bob, "Junk")
    assert b"dmarc=fail (p=quarantine dis=quarantine) header.from=origin.test" in raw


def test_smtp_reject_is_550_and_nothing_is_stored(receiver, zone):
    bob, port = receiver
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(port, "x@spammer.test", message("origin.test"))
    expected = replies.S550_DMARC_REJECT.format("origin.test")
    assert (refused.value.smtp_code, refused.value.smtp_error.decode()) == (
        expected.code,
        f"{expected.status} {expected.text}",
    )
    assert Message.objects.count() == 0


def test_smtp_a_trusted_forwarder_overrides_the_reject(receiver, zone, settings):
    from tests.delivery.test_inbound_dkim import forwarded_through_list

    bob, port = receiver
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    zone.add_txt("lists.test", "v=spf1 ip4:127.0.0.1 -all")
    forwarded = forwarded_through_list(zone)
    with pytest.raises(smtplib.SMTPDataError):
        send(port, "team-bounces@lists.test", forwarded)
    settings.MAILHOST_ARC_TRUSTED_SEALERS = ("lists.test",)
    send(port, "team-bounces@lists.test", forwarded)
    [raw] = stored(bob, "INBOX")
    assert b"dmarc=fail (p=reject dis=none override=trusted_forwarder)" in raw
    assert b"arc=pass (i=1 lists.test)" in raw


def test_smtp_a_listed_hosted_sender_client_is_not_junked_by_our_own_policy(
    receiver, zone, live_settings
):
    # example.org (hosted here) publishes p=quarantine, as `dnsrecords` says; the office
    # printer on a listed address sends as scanner@example.org, unsigned, outside SPF.
    import ipaddress

    bob, port = receiver
    live_settings.MAILHOST_SMTP_HOSTED_SENDER_CLIENTS = (ipaddress.ip_network("127.0.0.1/32"),)
    zone.add_txt("example.org", "v=spf1 ip4:192.0.2.1 -all")
    zone.add_txt("_dmarc.example.org", "v=DMARC1; p=quarantine")
    scan = message("origin.test").replace(b"jane@origin.test", b"scanner@example.org")
    send(port, "scanner@example.org", scan)
    [raw] = stored(bob, "INBOX")
    assert b"dmarc=fail (p=quarantine dis=none override=local_policy)" in raw
    codes = [code for code, _ in AuthResults.from_header(raw, "mx.receiver.test").reasons()]
    assert codes[:2] == ["DMARC_FAIL_QUARANTINE", "DMARC_LOCAL_POLICY"]
    # Anyone else sending as example.org gets the policy.
    live_settings.MAILHOST_SMTP_HOSTED_SENDER_CLIENTS = ()
    send(port, "x@spammer.test", scan)
    [junked] = stored(bob, "Junk")
    assert b"dmarc=fail (p=quarantine dis=quarantine)" in junked


def test_smtp_a_dns_outage_never_loses_mail(receiver, zone, settings):
    # Nothing answers DNS: every check is a temperror within the bound, and the message
    # is accepted (p=reject is never applied on a temperror).
    bob, port = receiver
    zone.add_txt("_dmarc.origin.test", "v=DMARC1; p=reject")
    settings.MAILHOST_DNS_SERVERS = [("127.0.0.1", 9)]
    settings.MAILHOST_INBOUND_CHECK_TIMEOUT = 0.5
    delivery_dns.forget_resolvers()
    send(port, "x@spammer.test", message("origin.test"))
    [raw] = stored(bob, "INBOX")
    assert b"dmarc=temperror" in raw and b"spf=temperror" in raw


def test_smtp_authenticated_submission_skips_the_checks_and_is_signed(receiver, zone, make_mailbox):
    from tests.support.smtp import client_tls_context

    bob, _ = receiver
    make_mailbox("alice@example.org")
    zone.add_txt("_dmarc.example.org", "v=DMARC1; p=reject")  # and no SPF for 127.0.0.1
    with running(runner.SMTP) as ports:
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=30) as client:
            client.starttls(context=client_tls_context())
            client.login("alice@example.org", "secret")
            client.sendmail(
                "alice@example.org",
                ["bob@example.org"],
                message("example.org").replace(b"jane@", b"alice@"),
            )
    [raw] = stored(bob, "INBOX")
    assert raw.startswith(b"DKIM-Signature: ")
    assert b"Authentication-Results" not in raw


@pytest.mark.django_db
def test_the_from_field_is_parsed_once_for_dmarc_and_the_spam_rules(zone, monkeypatch):
    """Port 25 reads the From field's addresses for DMARC and for the spam rules (a name that
    shows another domain's address): one parse of the same text serves both."""
    import email.utils

    from delivery import spam
    from delivery.inbound import checks
    from delivery.spam import builtin
    from mailboxes import headers

    parses = []

    def counted(values):  # noqa: ANN001, ANN202
        parses.append(list(values))
        return email.utils.getaddresses(values)

    for module in (headers, checks, builtin):
        monkeypatch.setattr(module, "getaddresses", counted, raising=False)
    raw = message("origin.test").replace(
        b"From: Jane <jane@origin.test>", b'From: "it@paypal.example" <parse-once@origin.test>'
    )
    auth = check(raw, "x@origin.test")
    result = spam.verdict(
        raw=raw, auth=auth, client_ip=CLIENT, helo="mail.esp.test", mail_from="", mailbox_ids=[]
    )
    assert auth.dmarc.domain == "origin.test"
    assert "FROM_NAME_OTHER_DOMAIN" in {r.code for r in result.reasons}
    assert parses == [['"it@paypal.example" <parse-once@origin.test>']]

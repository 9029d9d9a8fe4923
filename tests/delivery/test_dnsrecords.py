"""DNS records to publish: `dnsrecords` prints them, `checkdns` and the admin check them
against a real DNS server (tests/delivery/conftest.py), /.well-known/mta-sts.txt serves the
policy the _mta-sts record announces."""

from __future__ import annotations

from io import StringIO

import dns.rdatatype
import dns.zone
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from delivery.dkim import dkim_public_key_value
from delivery.dnsrecords import domain_records, mta_sts_id, mta_sts_policy

pytestmark = pytest.mark.django_db

HOST = "mail.test.example"
ADDRESS = "203.0.113.5"
ADDRESS6 = "2001:db8::5"


@pytest.fixture
def dns_settings(settings):
    settings.MAILHOST_HOSTNAME = HOST
    settings.MAILHOST_BIND = "0.0.0.0"
    settings.MAILHOST_PUBLIC_ADDRESSES = ()
    settings.MAILHOST_CAA_ISSUERS = ("letsencrypt.org",)
    settings.MAILHOST_MTA_STS_MODE = "testing"
    settings.MAILHOST_SMTP_PORT = 25
    settings.MAILHOST_SUBMISSION_PORT = 10587
    settings.MAILHOST_SUBMISSIONS_PORT = 10465
    settings.MAILHOST_IMAP_PORT = 10143
    settings.MAILHOST_IMAPS_PORT = 10993
    settings.MAILHOST_POP3_PORT = 10110
    settings.MAILHOST_POP3S_PORT = 10995
    settings.MAILHOST_MANAGESIEVE_PORT = 14190
    return settings


def dnsrecords(*args: str) -> list[str]:
    out = StringIO()
    call_command("dnsrecords", *args, stdout=out)
    return out.getvalue().splitlines()


def checkdns(*args: str) -> tuple[list[str], int]:
    out, err = StringIO(), StringIO()
    try:
        call_command("checkdns", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = exc.code
    return out.getvalue().splitlines(), status


def test_printed_records(dns_settings, make_domain):
    domain = make_domain("example.org")
    lines = dnsrecords("example.org", "--address", ADDRESS, "--address", ADDRESS6)
    dkim = dkim_public_key_value(domain)
    assert len(dkim) > 255  # a 2048-bit key: the value needs two strings
    expected = [
        f"example.org. IN MX 10 {HOST}.",
        'example.org. IN TXT "v=spf1 mx -all"',
        f'mailhost._domainkey.example.org. IN TXT "{dkim[:255]}" "{dkim[255:]}"',
        '_dmarc.example.org. IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.org"',
        f'_mta-sts.example.org. IN TXT "v=STSv1; id={mta_sts_id()}"',
        f"mta-sts.example.org. IN CNAME {HOST}.",
        '_smtp._tls.example.org. IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@example.org"',
        f"autoconfig.example.org. IN CNAME {HOST}.",
        f"autodiscover.example.org. IN CNAME {HOST}.",
        f"_submissions._tcp.example.org. IN SRV 0 1 10465 {HOST}.",
        f"_submission._tcp.example.org. IN SRV 10 1 10587 {HOST}.",
        f"_imaps._tcp.example.org. IN SRV 0 1 10993 {HOST}.",
        f"_imap._tcp.example.org. IN SRV 10 1 10143 {HOST}.",
        f"_pop3s._tcp.example.org. IN SRV 0 1 10995 {HOST}.",
        f"_pop3._tcp.example.org. IN SRV 10 1 10110 {HOST}.",
        f"_sieve._tcp.example.org. IN SRV 0 1 14190 {HOST}.",
        'example.org. IN CAA 0 issue "letsencrypt.org"',
        f'{HOST}. IN TXT "v=spf1 a -all"',
        f"{HOST}. IN A {ADDRESS}",
        f"{HOST}. IN AAAA {ADDRESS6}",
        f"5.113.0.203.in-addr.arpa. IN PTR {HOST}.",
        f"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. IN PTR {HOST}.",
    ]
    assert [line for line in lines if not line.startswith(";")] == expected


def test_output_parses_as_a_zone(dns_settings, make_domain):
    domain = make_domain("example.org")
    lines = dnsrecords("example.org", "--address", ADDRESS)
    text = "$ORIGIN example.org.\n$TTL 3600\n" + "\n".join(lines) + "\n"
    # Origin ".": every printed name (the server's and the reverse ones too) is in the zone.
    zone = dns.zone.from_text(text, origin=".", check_origin=False, relativize=False)

    def txt(name: str) -> list[bytes]:
        (rdata,) = zone.find_rdataset(name, "TXT")
        assert all(len(s) <= 255 for s in rdata.strings)
        return rdata.strings

    dkim = txt("mailhost._domainkey.example.org.")
    assert len(dkim) == 2 and b"".join(dkim).decode() == dkim_public_key_value(domain)
    assert txt("example.org.") == (b"v=spf1 mx -all",)
    assert txt("_dmarc.example.org.") == (
        b"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.org",
    )
    assert txt("_smtp._tls.example.org.")[0].startswith(b"v=TLSRPTv1; rua=mailto:")
    (srv,) = zone.find_rdataset("_imaps._tcp.example.org.", "SRV")
    assert (srv.port, srv.target.to_text()) == (10993, f"{HOST}.")
    (caa,) = zone.find_rdataset("example.org.", "CAA")
    assert (caa.tag, caa.value) == (b"issue", b"letsencrypt.org")
    (ptr,) = zone.find_rdataset("5.113.0.203.in-addr.arpa.", "PTR")
    assert ptr.target.to_text() == f"{HOST}."


def test_address_from_setting_or_bind_else_unknown(dns_settings, make_domain):
    domain = make_domain("example.org")
    by_type = {r.type: r for r in domain_records(domain)}
    assert by_type["A"].value is None and by_type["PTR"].value is None
    unknown = [line for line in dnsrecords("example.org") if "unknown" in line]
    assert unknown == [
        f"; {HOST} A: the server's public address is unknown (set MAILHOST_PUBLIC_ADDRESSES"
        " or pass --address)",
        f"; the server's address PTR: should name {HOST}.; the server's public address is"
        " unknown (set MAILHOST_PUBLIC_ADDRESSES or pass --address)",
    ]

    dns_settings.MAILHOST_BIND = "198.51.100.7"
    by_type = {r.type: r for r in domain_records(domain)}
    assert by_type["A"].value == "198.51.100.7"
    assert by_type["PTR"].name == "7.100.51.198.in-addr.arpa"

    dns_settings.MAILHOST_PUBLIC_ADDRESSES = (ADDRESS,)
    by_type = {r.type: r for r in domain_records(domain)}
    assert by_type["A"].value == ADDRESS

    dns_settings.MAILHOST_BIND = "127.0.0.1"
    dns_settings.MAILHOST_PUBLIC_ADDRESSES = ()
    assert {r.type: r for r in domain_records(domain)}["A"].value is None


def test_unknown_domain_is_an_error(dns_settings, db):
    with pytest.raises(CommandError, match="nosuch.test is not a hosted domain"):
        dnsrecords("nosuch.test")
    with pytest.raises(CommandError, match="--address"):
        dnsrecords("nosuch.test", "--address", "203.0.113.300")


# --- checkdns against a real DNS server ----------------------------------------------------


def publish(server, records) -> None:
    for record in records:
        server.add(record.name, record.type, record.value)


def test_checkdns_all_right(dns_settings, dns_server, make_domain):
    domain = make_domain("example.org")
    records = domain_records(domain, addresses=[ADDRESS])
    publish(dns_server, records)
    # Other TXT records at the same names are none of SPF's business.
    dns_server.add("example.org", "TXT", '"google-site-verification=abc"')
    dns_server.add("example.org", "CAA", '0 issue "pki.goog"')
    lines, status = checkdns("example.org", "--address", ADDRESS)
    assert lines == [f"{r.name} {r.type}: ok" for r in records]
    assert status == 0


def test_checkdns_one_missing_one_wrong(dns_settings, dns_server, make_domain):
    domain = make_domain("example.org")
    records = domain_records(domain, addresses=[ADDRESS])
    publish(dns_server, [r for r in records if r.name != "_dmarc.example.org"])
    # An old SPF record beside ours: two v=spf1 records are a permerror (RFC 7208 4.5).
    dns_server.add("example.org", "TXT", '"v=spf1 a -all"')
    lines, status = checkdns("example.org", "--address", ADDRESS)
    assert status == 1
    assert "_dmarc.example.org TXT: missing" in lines
    assert "example.org TXT: wrong (found: v=spf1 a -all; v=spf1 mx -all)" in lines
    bad = [line for line in lines if not line.endswith(": ok")]
    assert len(bad) == 2 and len(lines) == len(records)


def test_checkdns_wrong_values(dns_settings, dns_server, make_domain):
    domain = make_domain("example.org")
    records = domain_records(domain, addresses=[ADDRESS])
    publish(dns_server, [r for r in records if r.type not in ("MX", "SRV", "PTR")])
    dns_server.add("example.org", "MX", "10 mx.elsewhere.test.")
    dns_server.add("_imaps._tcp.example.org", "SRV", f"0 1 993 {HOST}.")
    dns_server.add("5.113.0.203.in-addr.arpa", "PTR", "host-5.isp.test.")
    lines, status = checkdns("example.org", "--address", ADDRESS)
    assert status == 1
    assert "example.org MX: wrong (found: 10 mx.elsewhere.test.)" in lines
    assert f"_imaps._tcp.example.org SRV: wrong (found: 0 1 993 {HOST}.)" in lines
    assert "_imap._tcp.example.org SRV: missing" in lines
    assert "5.113.0.203.in-addr.arpa PTR: wrong (found: host-5.isp.test.)" in lines


def test_checkdns_unknown_address_fails(dns_settings, dns_server, make_domain):
    domain = make_domain("example.org")
    publish(dns_server, [r for r in domain_records(domain) if r.value is not None])
    lines, status = checkdns("example.org")
    assert status == 1
    assert f"{HOST} A: unknown (the server's public address is unknown" in lines[-2]
    assert [line for line in lines if not line.endswith(": ok")] == lines[-2:]


def test_checkdns_dns_failure_is_an_error(dns_settings, dns_server, make_domain):
    domain = make_domain("example.org")
    publish(dns_server, domain_records(domain, addresses=[ADDRESS]))
    dns_server.servfail.add("_dmarc.example.org")
    lines, status = checkdns("example.org", "--address", ADDRESS)
    assert status == 1
    assert "_dmarc.example.org TXT: error (no nameserver answered (SERVFAIL))" in lines


# --- the admin ------------------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, dns_settings):
    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw"))
    return client


def test_admin_shows_records_and_checks_them(superuser_client, dns_server, make_domain):
    domain = make_domain("example.org")
    page = superuser_client.get(f"/admin/mailboxes/domain/{domain.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert '<pre class="dns-records">' in html
    assert f"example.org. IN MX 10 {HOST}." in html
    assert "_submissions._tcp.example.org. IN SRV 0 1 10465" in html
    check_url = f"/admin/mailboxes/domain/{domain.pk}/checkdns/"
    assert f'href="{check_url}"' in html

    records = domain_records(domain)
    publish(dns_server, [r for r in records if r.value is not None and r.type != "MX"])
    dns_server.add("example.org", "MX", "10 mx.elsewhere.test.")
    html = superuser_client.get(check_url).content.decode()
    assert "Some records are not right" in html
    assert html.count('<tr class="dns-ok">') == len(records) - 3
    assert html.count('<tr class="dns-wrong">') == 1
    assert html.count('<tr class="dns-unknown">') == 2  # A and PTR: no address known
    assert "<code>10 mx.elsewhere.test.</code>" in html


def test_admin_check_needs_staff(client, dns_settings, make_domain):
    domain = make_domain("example.org")
    page = client.get(f"/admin/mailboxes/domain/{domain.pk}/checkdns/")
    assert page.status_code == 302 and "/admin/login/" in page["Location"]


# --- /.well-known/mta-sts.txt ----------------------------------------------------------------


def test_mta_sts_policy_served_on_the_mta_sts_name(client, dns_settings, make_domain):
    make_domain("example.org")
    testing_id = mta_sts_id()
    dns_settings.MAILHOST_MTA_STS_MODE = "enforce"
    response = client.get("/.well-known/mta-sts.txt", HTTP_HOST="mta-sts.example.org")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == "text/plain"
    assert response.content == (
        f"version: STSv1\r\nmode: enforce\r\nmx: {HOST}\r\nmax_age: 604800\r\n".encode()
    )
    assert response.content.decode() == mta_sts_policy()
    assert mta_sts_id() != testing_id  # the policy changed, so does the TXT record's id

    assert client.get("/.well-known/mta-sts.txt", HTTP_HOST="example.org").status_code == 404
    other = client.get("/.well-known/mta-sts.txt", HTTP_HOST="mta-sts.other.test")
    assert other.status_code == 404


def test_check_with_silent_dns_takes_one_timeout_not_one_per_record(dns_settings, make_domain):
    """The admin's check page runs in a web request: a resolver that never answers must cost
    about one DNS timeout, not one per record (18 of them)."""
    import socket
    import time

    from delivery import dns as delivery_dns
    from delivery.dnsrecords import Status, check_records

    domain = make_domain("example.org")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # takes queries, answers none
    try:
        dns_settings.MAILHOST_DNS_SERVERS = [silent.getsockname()]
        dns_settings.MAILHOST_DNS_TIMEOUT = 1.0
        delivery_dns.forget_resolvers()
        records = domain_records(domain, addresses=[ADDRESS])
        started = time.monotonic()
        checks = check_records(records)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert [c.status for c in checks] == [Status.ERROR] * len(records)
    assert checks[0].line == "example.org MX: error (DNS timeout)"
    assert elapsed < 4, f"{len(records)} records took {elapsed:.1f} s"


def test_helo_spf_for_the_server_name_unless_it_is_the_domain(dns_settings, make_domain):
    domain = make_domain("example.org")
    spf = [(r.name, r.value) for r in domain_records(domain) if "v=spf1" in (r.value or "")]
    assert spf == [("example.org", '"v=spf1 mx -all"'), (HOST, '"v=spf1 a -all"')]
    # Two SPF records at one name would be a permerror (RFC 7208 4.5).
    dns_settings.MAILHOST_HOSTNAME = "example.org"
    spf = [(r.name, r.value) for r in domain_records(domain) if "v=spf1" in (r.value or "")]
    assert spf == [("example.org", '"v=spf1 mx -all"')]


def test_commands_end_to_end(tmp_path, dns_server):
    """As an admin runs them: `dnsrecords` in a fresh install, its output loaded into a DNS
    server as a zone, then `checkdns` through MAILHOST_DNS_SERVERS and its exit status."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MAILHOST_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        MAILHOST_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        MAILHOST_HOSTNAME=HOST,
        MAILHOST_PUBLIC_ADDRESSES=ADDRESS,
        MAILHOST_DNS_SERVERS=f"127.0.0.1:{dns_server.port}",
        MAILHOST_DNS_TIMEOUT="5",
    )

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            env=env,
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "-v0").returncode == 0
    assert manage("adddomain", "example.org").returncode == 0
    printed = manage("dnsrecords", "example.org")
    assert printed.returncode == 0, printed.stderr
    zone = dns.zone.from_text(
        "$TTL 60\n" + printed.stdout, origin=".", check_origin=False, relativize=False
    )
    published = 0
    for name, rdataset in zone.iterate_rdatasets():
        for rdata in rdataset:
            dns_server.add(name.to_text(), dns.rdatatype.to_text(rdataset.rdtype), rdata.to_text())
            published += 1
    assert published == len([line for line in printed.stdout.splitlines() if " IN " in line])

    checked = manage("checkdns", "example.org")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": ok\n") == published

    del dns_server.records["_smtp._tls.example.org"]
    dns_server.records["autoconfig.example.org"]["CNAME"] = ["elsewhere.test."]
    checked = manage("checkdns", "example.org")
    assert checked.returncode == 1
    bad = [line for line in checked.stdout.splitlines() if not line.endswith(": ok")]
    assert bad == [
        "_smtp._tls.example.org TXT: missing",
        "autoconfig.example.org CNAME: wrong (found: elsewhere.test.)",
    ]
    assert checked.stderr.strip() == f"2 of {published} records are not right"

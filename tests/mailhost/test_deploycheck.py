"""`manage.py checkdeploy`: every check passes on a good setup and fails (or warns) on a bad
one: hostname through a real DNS server, TLS from a test CA against the generated one, the
relay test set through the port-25 RCPT policy, data dir modes, and ports of live listeners."""

from __future__ import annotations

import datetime
import os
import socket

import pytest
from django.core.management import call_command

from bench.mailhost_process import free_port
from delivery import accept
from delivery import dns as delivery_dns
from mailboxes.services import alias_create, domain_create
from mailhost import deploycheck, runner, tls
from mailhost.deploycheck import Status
from tests.delivery import conftest as delivery_fixtures
from tests.support.servers import running
from tests.support.tlsca import make_ca

HOSTNAME = "mx.test.example"


def statuses(results) -> list[Status]:
    return [r.status for r in results]


def only(results):
    assert len(results) == 1, results
    return results[0]


# --- hostname ------------------------------------------------------------------------------


@pytest.fixture
def dns_zone(settings):
    server = delivery_fixtures.TestDNSServer()
    settings.MAILHOST_DNS_SERVERS = [("127.0.0.1", server.port)]
    settings.MAILHOST_DNS_TIMEOUT = 2.0
    settings.MAILHOST_HOSTNAME = HOSTNAME
    settings.MAILHOST_BIND = "0.0.0.0"
    settings.MAILHOST_PUBLIC_ADDRESSES = []
    delivery_dns.set_resolver(None)
    delivery_dns.forget_resolvers()
    yield server
    server.close()
    delivery_dns.forget_resolvers()


def this_hosts_address() -> str:
    """An address on one of this machine's interfaces other than loopback (the one a packet
    to the documentation range would leave from; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.123", 9))
        except OSError:
            pytest.skip("this machine has no IPv4 route off loopback")
        address = sock.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("this machine has no address off loopback")
    return address


def test_hostname_resolving_to_this_host_is_ok(dns_zone):
    address = this_hosts_address()
    dns_zone.add(HOSTNAME, "A", address)
    result = only(deploycheck.check_hostname())
    assert result.status is Status.OK, result
    assert address in result.text
    assert (HOSTNAME, "A") in dns_zone.queries  # asked the configured resolver


def test_hostname_resolving_elsewhere_fails(dns_zone):
    dns_zone.add(HOSTNAME, "A", "198.51.100.77")
    result = only(deploycheck.check_hostname())
    assert result.status is Status.FAIL
    assert "198.51.100.77" in result.text and "MAILHOST_PUBLIC_ADDRESSES" in result.text


def test_hostname_behind_nat_is_ok_with_its_public_address_declared(dns_zone, settings):
    dns_zone.add(HOSTNAME, "A", "198.51.100.77")
    settings.MAILHOST_PUBLIC_ADDRESSES = ["198.51.100.77"]
    assert only(deploycheck.check_hostname()).status is Status.OK


def test_hostname_resolving_to_the_bind_address_is_ok(dns_zone, settings):
    dns_zone.add(HOSTNAME, "A", "198.51.100.78")
    settings.MAILHOST_BIND = "198.51.100.78"
    assert only(deploycheck.check_hostname()).status is Status.OK


def test_hostname_resolving_to_loopback_warns(dns_zone):
    dns_zone.add(HOSTNAME, "A", "127.0.0.1")
    result = only(deploycheck.check_hostname())
    assert result.status is Status.WARN and "loopback" in result.text


def test_hostname_not_in_dns_fails(dns_zone):
    result = only(deploycheck.check_hostname())
    assert result.status is Status.FAIL and "NXDOMAIN" in result.text


@pytest.mark.parametrize(
    "name,why",
    [
        ("localhost", "is localhost"),
        ("localhost.localdomain", "is localhost"),
        ("mail.localhost", "is localhost"),
        ("mailserver", "not a fully qualified"),
        ("192.0.2.2", "an address"),
    ],
)
def test_hostname_that_is_no_public_fqdn_fails(dns_zone, settings, name, why):
    settings.MAILHOST_HOSTNAME = name
    result = only(deploycheck.check_hostname())
    assert result.status is Status.FAIL and why in result.text
    assert dns_zone.queries == []  # refused before asking DNS


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture
def tls_settings(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.MAILHOST_HOSTNAME = HOSTNAME
    settings.MAILHOST_BIND = "127.0.0.1"
    tls._context = None
    yield settings
    tls._context = None


def test_certificate_from_a_ca_is_ok(tls_settings, tmp_path, monkeypatch):
    ca = make_ca(tmp_path / "ca", names=(HOSTNAME,))
    tls_settings.MAILHOST_TLS_CERT, tls_settings.MAILHOST_TLS_KEY = ca.cert_path, ca.key_path
    # The test CA's certificates live one day; that is "expiring soon" by the real threshold.
    monkeypatch.setattr(deploycheck, "TLS_EXPIRY_WARNING", datetime.timedelta(hours=1))
    result = only(deploycheck.check_tls())
    assert result.status is Status.OK, result
    assert "Mailhost test CA" in result.text


def test_certificate_expiring_soon_warns(tls_settings, tmp_path):
    ca = make_ca(tmp_path / "ca", names=(HOSTNAME,))
    tls_settings.MAILHOST_TLS_CERT, tls_settings.MAILHOST_TLS_KEY = ca.cert_path, ca.key_path
    result = only(deploycheck.check_tls())
    assert result.status is Status.WARN and "renew" in result.text


def test_generated_self_signed_certificate_fails(tls_settings):
    tls_settings.MAILHOST_TLS_CERT = tls_settings.MAILHOST_TLS_KEY = None
    tls.server_context()  # what the listeners would use: generated into the data dir
    result = only(deploycheck.check_tls())
    assert result.status is Status.FAIL and "self-signed" in result.text
    assert "MAILHOST_TLS_CERT" in result.text


def test_given_self_signed_certificate_fails(tls_settings, tmp_path):
    tls_settings.MAILHOST_TLS_CERT = tls_settings.MAILHOST_TLS_KEY = None
    tls.server_context()
    generated = tmp_path / "tls"
    tls_settings.MAILHOST_TLS_CERT = str(generated / "cert.pem")
    tls_settings.MAILHOST_TLS_KEY = str(generated / "key.pem")
    result = only(deploycheck.check_tls())
    assert result.status is Status.FAIL and "is self-signed" in result.text


def test_certificate_for_another_name_fails(tls_settings, tmp_path):
    ca = make_ca(tmp_path / "ca", names=("other.test.example",))
    tls_settings.MAILHOST_TLS_CERT, tls_settings.MAILHOST_TLS_KEY = ca.cert_path, ca.key_path
    result = only(deploycheck.check_tls())
    assert result.status is Status.FAIL
    assert "other.test.example" in result.text and HOSTNAME in result.text


def test_wildcard_certificate_covers_the_hostname(tls_settings, tmp_path, monkeypatch):
    ca = make_ca(tmp_path / "ca", names=("*.test.example",))
    tls_settings.MAILHOST_TLS_CERT, tls_settings.MAILHOST_TLS_KEY = ca.cert_path, ca.key_path
    monkeypatch.setattr(deploycheck, "TLS_EXPIRY_WARNING", datetime.timedelta(hours=1))
    assert only(deploycheck.check_tls()).status is Status.OK


def test_acme_certificate_is_checked(tls_settings, tmp_path, monkeypatch):
    """MAILHOST_ACME_DIRECTORY: the certificate mailhost.acme keeps in the data dir is the one
    checked (runmail serves it), not the self-signed fallback."""
    from mailhost import acme

    tls_settings.MAILHOST_TLS_CERT = tls_settings.MAILHOST_TLS_KEY = None
    tls_settings.MAILHOST_ACME_DIRECTORY = "https://acme.test.example/directory"
    result = only(deploycheck.check_tls())
    assert result.status is Status.FAIL and "no ACME certificate" in result.text
    ca = make_ca(tmp_path / "ca", names=(HOSTNAME,))
    cert, key = acme.certificate_files()
    cert.parent.mkdir(parents=True)
    cert.write_bytes(ca.cert_path.read_bytes())
    key.write_bytes(ca.key_path.read_bytes())
    monkeypatch.setattr(deploycheck, "TLS_EXPIRY_WARNING", datetime.timedelta(hours=1))
    result = only(deploycheck.check_tls())
    assert result.status is Status.OK, result
    assert "ACME" in result.text and "Mailhost test CA" in result.text


def test_certificate_with_someone_elses_key_fails(tls_settings, tmp_path):
    ca = make_ca(tmp_path / "ca", names=(HOSTNAME,))
    other = make_ca(tmp_path / "other", names=(HOSTNAME,))
    tls_settings.MAILHOST_TLS_CERT, tls_settings.MAILHOST_TLS_KEY = ca.cert_path, other.key_path
    result = only(deploycheck.check_tls())
    assert result.status is Status.FAIL and "cannot load" in result.text


# --- relay ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_relay_forms_are_refused(make_mailbox, settings):
    make_mailbox("alice@example.org")
    # A catch-all takes the forms that hide the remote address in a hosted local part: they
    # stay here, which is not relaying.
    alias_create(address="@example.org", destinations=["alice@example.org"])
    results = deploycheck.check_relay()
    assert len(results) == len(deploycheck.RELAY_FORMS)
    assert statuses(results) == [Status.OK] * len(results), [r.line for r in results]
    texts = [r.text for r in results]
    assert texts[0] == "RCPT TO:<user@remote.test> refused: 554 5.7.1 Relay access denied"
    assert "RCPT TO:<user%remote.test@example.org> accepted for" in texts[1]
    assert "RCPT TO:<@example.org:user@remote.test> refused: 554 5.7.1" in texts[3]


@pytest.mark.django_db
def test_relay_forms_without_hosted_domains_are_refused(db, settings):
    settings.MAILHOST_HOSTNAME = HOSTNAME
    results = deploycheck.check_relay()
    assert statuses(results) == [Status.OK] * len(results), [r.line for r in results]
    assert f"user%remote.test@{HOSTNAME}>" in results[1].text


@pytest.mark.django_db
def test_a_policy_that_relays_fails(make_domain, monkeypatch):
    make_domain("example.org")
    verdict = accept.recipient_verdict

    def open_relay(address, *, relay_allowed, size=0):  # every client treated as logged in
        return verdict(address, relay_allowed=True, size=size)

    monkeypatch.setattr(accept, "recipient_verdict", open_relay)
    results = deploycheck.check_relay()
    failed = [r for r in results if r.status is Status.FAIL]
    # The source route is dropped (RFC 5321 4.1.1.3), so it reaches user@remote.test too.
    assert [r.text.split(" ACCEPTED")[0] for r in failed] == [
        "RCPT TO:<user@remote.test>",
        "RCPT TO:<@example.org:user@remote.test>",
    ]
    assert "open relay" in failed[0].text


# --- data dir ------------------------------------------------------------------------------


@pytest.fixture
def data_dir(settings, tmp_path):
    path = tmp_path / "var"
    path.mkdir(mode=0o700)
    (path / "tls").mkdir(mode=0o700)
    for name in ("tls/key.pem", "tls/cert.pem", "mailhost.sqlite3"):
        (path / name).write_text("x")
        os.chmod(path / name, 0o600)
    settings.DATA_DIR = path
    settings.MAILHOST_TLS_CERT = settings.MAILHOST_TLS_KEY = None
    return path


def check(data_dir):
    return only(deploycheck.check_data_dir(sqlite_path=data_dir / "mailhost.sqlite3"))


def test_private_data_dir_is_ok(data_dir):
    result = check(data_dir)
    assert result.status is Status.OK, result


@pytest.mark.parametrize("name", ["", "mailhost.sqlite3", "tls", "tls/key.pem"])
def test_data_dir_readable_by_others_fails(data_dir, name):
    path = data_dir / name
    os.chmod(path, 0o755 if path.is_dir() else 0o644)
    result = check(data_dir)
    assert result.status is Status.FAIL and str(path) in result.text


def test_sqlite_wal_readable_by_others_fails(data_dir):
    wal = data_dir / "mailhost.sqlite3-wal"
    wal.write_text("x")
    os.chmod(wal, 0o604)
    assert check(data_dir).status is Status.FAIL


def test_data_dir_open_to_the_group_warns(data_dir):
    os.chmod(data_dir / "tls" / "key.pem", 0o640)
    assert check(data_dir).status is Status.WARN


def test_given_tls_key_readable_by_others_fails(data_dir, settings, tmp_path):
    key = tmp_path / "given-key.pem"
    key.write_text("x")
    os.chmod(key, 0o644)
    settings.MAILHOST_TLS_KEY = str(key)
    result = check(data_dir)
    assert result.status is Status.FAIL and str(key) in result.text


def test_default_paths_are_the_settings(data_dir):
    os.chmod(data_dir, 0o705)
    result = only(deploycheck.check_data_dir())
    assert result.status is Status.FAIL and f"{data_dir} (0705)" in result.text


# --- ports ---------------------------------------------------------------------------------


def use_ports(settings, ports: dict[str, int]) -> None:
    for name, port in ports.items():
        setattr(settings, f"MAILHOST_{name.upper()}_PORT", port)


@pytest.mark.django_db(transaction=True)
def test_ports_of_live_listeners_greet(live_settings):
    with running(runner.SMTP, runner.IMAP, runner.POP3, runner.MANAGESIEVE) as ports:
        use_ports(live_settings, ports)
        results = deploycheck.check_ports()
    assert statuses(results) == [Status.OK] * 8, [r.line for r in results]
    lines = {r.text.split("=")[0]: r.text for r in results}
    assert f": 220 {HOSTNAME}" in lines["MAILHOST_SUBMISSIONS_PORT"]  # read through TLS
    assert ": * OK" in lines["MAILHOST_IMAPS_PORT"] and ": +OK" in lines["MAILHOST_POP3S_PORT"]
    assert ': "IMPLEMENTATION" "Mailhost"' in lines["MAILHOST_MANAGESIEVE_PORT"]


@pytest.mark.django_db(transaction=True)
def test_a_port_not_listening_fails_with_its_setting(live_settings):
    with running(runner.SMTP, runner.IMAP) as ports:
        use_ports(live_settings, ports)
        live_settings.MAILHOST_POP3_PORT = free_port()
        # POP3S's setting pointed at the IMAPS listener: it answers, but not as POP3.
        live_settings.MAILHOST_POP3S_PORT = ports["imaps"]
        results = deploycheck.check_ports()
    by_setting = {r.text.split("=")[0]: r for r in results}
    assert [r.status for r in results[:5]] == [Status.OK] * 5
    pop3 = by_setting["MAILHOST_POP3_PORT"]
    assert pop3.status is Status.FAIL and "refused" in pop3.text.lower()
    pop3s = by_setting["MAILHOST_POP3S_PORT"]
    assert pop3s.status is Status.FAIL and "'+OK'" in pop3s.text and "* OK" in pop3s.text


def test_port_zero_fails(settings):
    settings.MAILHOST_BIND = "127.0.0.1"
    settings.MAILHOST_SMTP_PORT = 0
    result = deploycheck.check_ports()[0]
    assert result.status is Status.FAIL and "MAILHOST_SMTP_PORT=0" in result.text


# --- the command ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_command_prints_a_line_per_check_and_exits_1_on_failure(
    live_settings, data_dir, dns_zone, capsys
):
    live_settings.MAILHOST_BIND = "127.0.0.1"
    dns_zone.add(HOSTNAME, "A", "127.0.0.1")
    domain_create(name="example.org")
    with running(runner.SMTP, runner.IMAP, runner.POP3, runner.MANAGESIEVE) as ports:
        use_ports(live_settings, ports)
        with pytest.raises(SystemExit) as exit_info:
            call_command("checkdeploy")
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "warn hostname",
        "fail tls",
        *["ok   relay"] * len(deploycheck.RELAY_FORMS),
        "ok   data_dir",
        *["ok   ports"] * 8,
    ]
    assert err.strip() == f"1 of {len(lines)} checks failed"


@pytest.mark.django_db
def test_command_exits_0_when_nothing_fails(
    settings, data_dir, dns_zone, tmp_path, monkeypatch, capsys
):
    dns_zone.add(HOSTNAME, "A", this_hosts_address())
    ca = make_ca(tmp_path / "ca", names=(HOSTNAME,))
    settings.MAILHOST_TLS_CERT, settings.MAILHOST_TLS_KEY = str(ca.cert_path), str(ca.key_path)
    os.chmod(ca.key_path, 0o600)
    monkeypatch.setattr(deploycheck, "TLS_EXPIRY_WARNING", datetime.timedelta(hours=1))
    call_command("checkdeploy", "--skip", "ports")  # no SystemExit
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == ["ok"] * (
        3 + len(deploycheck.RELAY_FORMS)
    )

"""SPF (RFC 7208) on port 25's checks: every result, the lookup limits, macros, HELO, all
answered by the local DNS server the way a sender's zone would."""

from __future__ import annotations

import pytest

from delivery.inbound import authenticate

MESSAGE = b"From: someone@spf.test\r\nSubject: spf\r\n\r\nbody\r\n"
CLIENT = "192.0.2.10"


@pytest.fixture
def zone(dns_server, settings):
    settings.MAILHOST_HOSTNAME = "mx.receiver.test"
    return dns_server


def spf(mail_from: str, *, client_ip: str = CLIENT, helo: str = "client.example.test"):
    return authenticate(raw=MESSAGE, client_ip=client_ip, helo=helo, mail_from=mail_from)


@pytest.mark.parametrize(
    ("record", "result"),
    [
        ("v=spf1 ip4:192.0.2.10 -all", "pass"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "pass"),
        ("v=spf1 ip4:198.51.100.1 -all", "fail"),
        ("v=spf1 ip4:198.51.100.1 ~all", "softfail"),
        ("v=spf1 ip4:198.51.100.1 ?all", "neutral"),
        ("v=spf1 ip4:198.51.100.1", "neutral"),  # RFC 7208 4.7: no match, no all
        ("v=spf1 ip4:192.0.2.10 frobnicate -all", "permerror"),  # unknown mechanism
        ("v=spf1 ip4:192.0.2.300 -all", "permerror"),
        ("v=spf1 redirect=nowhere.spf.test", "permerror"),  # 6.1: target without a record
    ],
)
def test_results_of_the_mail_from_record(zone, record, result):
    zone.add_txt("spf.test", record)
    got = spf("someone@spf.test").spf
    assert (got.result, got.identity, got.domain) == (result, "mailfrom", "spf.test")


def test_no_record_is_none(zone):
    zone.add_txt("spf.test", "some other TXT record")
    assert spf("someone@spf.test").spf.result == "none"
    assert spf("someone@nxdomain.spf.test").spf.result == "none"


def test_two_records_are_a_permerror(zone):
    zone.add_txt("spf.test", "v=spf1 -all")
    zone.add_txt("spf.test", "v=spf1 +all")
    assert spf("someone@spf.test").spf.result == "permerror"  # RFC 7208 4.5


def test_servfail_is_a_temperror(zone):
    zone.servfail.add("spf.test")
    got = spf("someone@spf.test")
    assert got.spf.result == "temperror"
    assert "spf=temperror" in got.header_value()


def test_a_and_mx_mechanisms_and_include(zone):
    zone.add_txt("spf.test", "v=spf1 mx include:_spf.partner.test -all")
    zone.add("spf.test", "MX", "10 mail.spf.test.")
    zone.add("mail.spf.test", "A", "203.0.113.5")
    zone.add_txt("_spf.partner.test", "v=spf1 a:relay.partner.test -all")
    zone.add("relay.partner.test", "A", CLIENT)
    assert spf("someone@spf.test").spf.result == "pass"  # through include: and a:
    assert spf("someone@spf.test", client_ip="203.0.113.5").spf.result == "pass"  # mx
    assert spf("someone@spf.test", client_ip="203.0.113.6").spf.result == "fail"


def test_ip6(zone):
    zone.add_txt("spf.test", "v=spf1 ip6:2001:db8::/32 -all")
    assert spf("someone@spf.test", client_ip="2001:db8::25").spf.result == "pass"
    assert spf("someone@spf.test", client_ip="2001:db9::25").spf.result == "fail"


def _includes(zone, count: int) -> None:
    """spf.test includes `count` records, each a DNS-mechanism lookup; none matches."""
    terms = " ".join(f"include:i{n}.spf.test" for n in range(count))
    zone.add_txt("spf.test", f"v=spf1 {terms} ip4:192.0.2.10 -all")
    for n in range(count):
        zone.add_txt(f"i{n}.spf.test", "v=spf1 ip4:198.51.100.1 -all")


def test_ten_lookups_are_allowed(zone):
    _includes(zone, 10)
    assert spf("someone@spf.test").spf.result == "pass"


def test_the_eleventh_lookup_is_a_permerror(zone):
    _includes(zone, 11)  # RFC 7208 4.6.4: more than 10 terms that cause DNS queries
    got = spf("someone@spf.test").spf
    assert got.result == "permerror"
    assert "lookup" in got.reason.lower()


def test_two_void_lookups_are_allowed(zone):
    zone.add_txt("spf.test", "v=spf1 a:void1.spf.test a:void2.spf.test ip4:192.0.2.10 -all")
    assert spf("someone@spf.test").spf.result == "pass"


def test_the_third_void_lookup_is_a_permerror(zone):
    # RFC 7208 4.6.4: more than two lookups that return NXDOMAIN or no answers.
    zone.add("void3.spf.test", "MX", "10 nowhere.spf.test.")  # exists, but has no A records
    zone.add_txt(
        "spf.test",
        "v=spf1 a:void1.spf.test a:void2.spf.test a:void3.spf.test ip4:192.0.2.10 -all",
    )
    got = spf("someone@spf.test").spf
    assert got.result == "permerror"
    assert "void" in got.reason.lower()


def test_macros(zone):
    # RFC 7208 7: %{i} client address, %{l} local part, %{o} sender domain, %{d} current
    # domain, %{h} HELO, %{s} sender; `exists` asks for an A record at the expanded name.
    zone.add_txt("spf.test", "v=spf1 exists:%{l}.%{o}.%{i}._a.%{d} exists:%{h}._h.%{d} -all")
    zone.add("jane.spf.test.192.0.2.10._a.spf.test", "A", "127.0.0.2")
    assert spf("jane@spf.test").spf.result == "pass"
    assert spf("john@spf.test").spf.result == "fail"  # no such name for john
    zone.add("gw.example.test._h.spf.test", "A", "127.0.0.2")
    assert spf("john@spf.test", helo="gw.example.test").spf.result == "pass"
    zone.add_txt("s.test", "v=spf1 exists:%{s}.%{ir}._s.s.test -all")
    zone.add(r"mary\@s.test.10.2.0.192._s.s.test", "A", "127.0.0.2")  # "@" is escaped
    assert spf("mary@s.test").spf.result == "pass"
    assert (r"mary\@s.test.10.2.0.192._s.s.test", "A") in zone.queries


def test_the_null_sender_is_checked_as_postmaster_at_helo(zone):
    zone.add_txt("gw.example.test", "v=spf1 ip4:192.0.2.10 -all")
    got = spf("", helo="gw.example.test")
    assert got.spf.result == "pass"  # RFC 7208 2.4
    assert got.spf.sender == "postmaster@gw.example.test"


def test_helo_identity(zone):
    zone.add_txt("gw.example.test", "v=spf1 a -all")
    zone.add("gw.example.test", "A", CLIENT)
    zone.add_txt("spf.test", "v=spf1 -all")
    got = spf("someone@spf.test", helo="gw.example.test")
    assert got.spf_helo.result == "pass" and got.spf_helo.domain == "gw.example.test"
    assert got.spf.result == "fail"
    value = got.header_value()
    assert "spf=pass" in value and "smtp.helo=gw.example.test" in value
    assert "spf=fail" in value and "smtp.mailfrom=someone@spf.test" in value
    assert spf("someone@spf.test", helo="other.example.test").spf_helo.result == "none"
    assert spf("someone@spf.test", helo="[192.0.2.10]").spf_helo.result == "none"


def test_the_timeout_bounds_the_checks(zone, settings):
    # A silent DNS server: the result is a temperror within the setting, never a hang.
    import time

    settings.MAILHOST_DNS_SERVERS = [("127.0.0.1", 9)]  # nothing answers there
    settings.MAILHOST_DNS_TIMEOUT = 5
    settings.MAILHOST_INBOUND_CHECK_TIMEOUT = 0.5
    from delivery import dns as delivery_dns

    delivery_dns.forget_resolvers()
    started = time.monotonic()
    got = spf("someone@spf.test")
    assert time.monotonic() - started < 2
    assert got.spf.result == "temperror" and got.dmarc.result == "temperror"


def test_a_result_is_given_again_while_its_answers_are_cached(zone, monkeypatch):
    from delivery import dns as delivery_dns
    from delivery.inbound import spf as spf_module

    zone.add_txt("spf.test", "v=spf1 include:_spf.partner.test -all")
    zone.add_txt("_spf.partner.test", f"v=spf1 ip4:{CLIENT} -all")
    assert spf("someone@spf.test").spf.result == "pass"
    evaluations = []
    check = spf_module.pyspf.query.check

    def counted(query, *args, **kwargs):  # noqa: ANN001, ANN202
        evaluations.append(query.s)
        return check(query, *args, **kwargs)

    monkeypatch.setattr(spf_module.pyspf.query, "check", counted)
    asked = len(zone.queries)
    again = spf("someone@spf.test")
    assert (again.spf.result, again.spf_helo.result) == ("pass", "none")
    assert evaluations == [] and len(zone.queries) == asked
    # Another client, sender or HELO is evaluated on its own.
    assert spf("someone@spf.test", client_ip="192.0.2.11").spf.result == "fail"
    assert spf("other@spf.test").spf.result == "pass"
    assert len(evaluations) == 3  # the new client's MAIL FROM and HELO, the new sender
    # The included record changes and its cached answer expires: evaluated afresh.
    zone.records["_spf.partner.test"]["TXT"] = ['"v=spf1 -all"']
    delivery_dns.forget_resolvers()
    assert spf("someone@spf.test").spf.result == "fail"


def test_a_temporary_failure_is_not_remembered(zone):
    zone.servfail.add("spf.test")
    assert spf("someone@spf.test").spf.result == "temperror"
    zone.servfail.clear()
    zone.add_txt("spf.test", f"v=spf1 ip4:{CLIENT} -all")
    assert spf("someone@spf.test").spf.result == "pass"


def test_a_cached_answer_is_read_from_the_cache_once(zone, monkeypatch):
    from delivery.inbound import dnsquery

    zone.add_txt("_dmarc.spf.test", "v=DMARC1; p=none")
    assert spf("someone@spf.test").dmarc.result != "temperror"  # the answers are cached now
    resolver = dnsquery.resolver()
    looked = []
    cached_rdatas = resolver.cached_rdatas

    def counted(name, rdtype):  # noqa: ANN001, ANN202
        looked.append(name)
        return cached_rdatas(name, rdtype)

    monkeypatch.setattr(resolver, "cached_rdatas", counted)
    asked = len(zone.queries)
    spf("someone@spf.test")
    assert len(zone.queries) == asked
    assert looked.count("_dmarc.spf.test") == 1


def test_answers_in_the_cache_take_no_future_and_no_thread(zone, monkeypatch):
    """A sender seen before: SPF (MAIL FROM and HELO) and DMARC are answered from the cache,
    neither on the pool nor through a concurrent.futures.Future (a Condition and its lock
    made for a value nobody waits for)."""
    from concurrent.futures import Future

    from delivery.inbound import checks

    zone.add_txt("spf.test", f"v=spf1 ip4:{CLIENT} -all")
    zone.add_txt("_dmarc.spf.test", "v=DMARC1; p=none")
    first = spf("someone@spf.test")
    assert (first.spf.result, first.dmarc.result) == ("pass", "pass")
    made = []

    class Counted(Future):
        def __init__(self) -> None:
            made.append(self)
            super().__init__()

    def no_pool():  # noqa: ANN202
        raise AssertionError("a cached answer went to the pool")

    monkeypatch.setattr(checks, "Future", Counted)
    monkeypatch.setattr(checks, "_executor", no_pool)
    again = spf("someone@spf.test")
    assert (again.spf.result, again.spf_helo.result, again.dmarc.result) == (
        "pass",
        first.spf_helo.result,
        "pass",
    )
    assert made == []


@pytest.mark.parametrize(
    ("text", "is_domain"),
    [
        ("client.example.test", True),
        ("client.example.test.", True),
        ("192.0.2.10", False),
        ("192.0.2.10.", False),
        ("1.2.3", True),  # not an IPv4 address: three parts
        ("256.1.1.1", True),
        ("2001:db8::1", False),
        ("::ffff:192.0.2.10", False),
        ("[192.0.2.10]", False),
        ("localhost", False),
        ("", False),
        ("\u0661.\u0662.\u0663.\u0664", True),  # Arabic-Indic digits are not an address
    ],
)
def test_a_name_is_told_from_an_address(text, is_domain):
    from delivery.inbound.spf import _is_domain

    assert _is_domain(text) is is_domain

"""MX resolution policy (in-memory twin) and the dnspython resolver (real local server)."""

from __future__ import annotations

import pytest

from delivery.dns import (
    DNSPermanentError,
    DNSPythonResolver,
    DNSTemporaryError,
    MemoryResolver,
    NoSuchDomain,
    NullMXError,
    destination_hosts,
    relay_hosts,
)


def names(hosts):
    return [h.name for h in hosts]


def test_mx_sorted_by_preference():
    r = MemoryResolver(
        mx_records={"a.test": [(20, "mx2.a.test"), (10, "mx1.a.test"), (30, "mx3.a.test")]},
        hosts={n: ["192.0.2.1"] for n in ("mx1.a.test", "mx2.a.test", "mx3.a.test")},
    )
    assert names(destination_hosts("a.test", r)) == ["mx1.a.test", "mx2.a.test", "mx3.a.test"]


def test_equal_preferences_in_random_order():
    r = MemoryResolver(
        mx_records={"a.test": [(10, "x.a.test"), (10, "y.a.test"), (5, "first.a.test")]},
        hosts={n: ["192.0.2.1"] for n in ("x.a.test", "y.a.test", "first.a.test")},
    )
    orders = {tuple(names(destination_hosts("a.test", r))) for _ in range(200)}
    assert orders == {
        ("first.a.test", "x.a.test", "y.a.test"),
        ("first.a.test", "y.a.test", "x.a.test"),
    }


def test_no_mx_means_the_domain_itself():
    r = MemoryResolver(hosts={"a.test": ["192.0.2.7", "2001:db8::7"]})
    [host] = destination_hosts("a.test", r)
    assert host.name == "a.test" and host.addresses == ("192.0.2.7", "2001:db8::7")


def test_no_mx_and_no_address_is_permanent():
    r = MemoryResolver(hosts={"a.test": []})
    with pytest.raises(DNSPermanentError) as exc:
        destination_hosts("a.test", r)
    assert exc.value.permanent and exc.value.reply.startswith("550 5.1.2")


def test_null_mx():
    r = MemoryResolver(mx_records={"a.test": [(0, ".")]})
    with pytest.raises(NullMXError) as exc:
        destination_hosts("a.test", r)
    assert exc.value.reply.startswith("556 5.1.10")


def test_nxdomain_is_permanent_servfail_temporary():
    r = MemoryResolver(failing={"b.test"})
    with pytest.raises(NoSuchDomain) as exc:
        destination_hosts("a.test", r)
    assert exc.value.permanent
    with pytest.raises(DNSTemporaryError) as exc:
        destination_hosts("b.test", r)
    assert not exc.value.permanent and exc.value.reply.startswith("451 4.4.3")


def test_unresolvable_exchanges_are_skipped_and_none_left_is_temporary():
    r = MemoryResolver(
        mx_records={"a.test": [(10, "gone.a.test"), (20, "mx2.a.test")], "c.test": [(1, "x.c")]},
        hosts={"mx2.a.test": ["192.0.2.2"]},
    )
    assert names(destination_hosts("a.test", r)) == ["mx2.a.test"]
    with pytest.raises(DNSTemporaryError):
        destination_hosts("c.test", r)


def test_idna_domain_is_looked_up_in_ascii():
    r = MemoryResolver(
        mx_records={"xn--bcher-kva.test": [(10, "mx.xn--bcher-kva.test")]},
        hosts={"mx.xn--bcher-kva.test": ["192.0.2.3"]},
    )
    assert names(destination_hosts("Bücher.test", r)) == ["mx.xn--bcher-kva.test"]


def test_address_literal_needs_no_dns():
    r = MemoryResolver()
    assert destination_hosts("[192.0.2.9]", r)[0].addresses == ("192.0.2.9",)
    assert destination_hosts("[IPv6:2001:db8::1]", r)[0].addresses == ("2001:db8::1",)


def test_relay_host_by_name_or_address():
    r = MemoryResolver(hosts={"relay.test": ["192.0.2.4"]})
    assert relay_hosts("relay.test", r)[0].addresses == ("192.0.2.4",)
    assert relay_hosts("192.0.2.5", r)[0].addresses == ("192.0.2.5",)
    with pytest.raises(DNSTemporaryError):  # a typo in the relay holds mail, never bounces
        relay_hosts("nope.test", r)


def test_dnspython_resolver_against_a_real_server(dns_server):
    dns_server.add("a.test", "MX", "20 mx2.a.test.", "10 mx1.a.test.")
    dns_server.add("mx1.a.test", "A", "127.0.0.2")
    dns_server.add("mx1.a.test", "AAAA", "::1")
    dns_server.add("mx2.a.test", "A", "127.0.0.4")
    dns_server.add("xn--bcher-kva.test", "MX", "0 .")
    dns_server.add("implicit.test", "A", "127.0.0.5")
    dns_server.servfail.add("broken.test")
    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2)
    hosts = destination_hosts("a.test", r)
    assert [(h.name, h.addresses) for h in hosts] == [
        ("mx1.a.test", ("127.0.0.2", "::1")),
        ("mx2.a.test", ("127.0.0.4",)),
    ]
    assert destination_hosts("implicit.test", r)[0].addresses == ("127.0.0.5",)
    with pytest.raises(NullMXError):
        destination_hosts("bücher.test", r)
    with pytest.raises(NoSuchDomain):
        destination_hosts("missing.test", r)
    with pytest.raises(DNSTemporaryError):
        destination_hosts("broken.test", r)


def test_dnspython_timeout_is_temporary():
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        r = DNSPythonResolver(servers=[("127.0.0.1", silent.getsockname()[1])], timeout=0.5)
        with pytest.raises(DNSTemporaryError) as exc:
            destination_hosts("a.test", r)
        assert "timeout" in exc.value.text.lower() or "answer" in exc.value.text.lower()
    finally:
        silent.close()


def test_an_exchange_whose_aaaa_is_refused_keeps_its_a_records(dns_server):
    # A broken authoritative answers A but REFUSED for AAAA: the A answer is the address.
    dns_server.add("refusing.test", "MX", "10 mx.refusing.test.")
    dns_server.add("mx.refusing.test", "A", "127.0.0.2")
    dns_server.refused.add(("mx.refusing.test", "AAAA"))
    dns_server.add("allrefused.test", "MX", "10 mx.allrefused.test.")
    dns_server.add("mx.allrefused.test", "A", "127.0.0.2")
    dns_server.refused.update({("mx.allrefused.test", "A"), ("mx.allrefused.test", "AAAA")})
    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2)
    [host] = destination_hosts("refusing.test", r)
    assert (host.name, host.addresses) == ("mx.refusing.test", ("127.0.0.2",))
    # None answered: the error names the rcode the server gave, not SERVFAIL.
    with pytest.raises(DNSTemporaryError) as exc:
        destination_hosts("allrefused.test", r)
    assert "REFUSED" in exc.value.text and "SERVFAIL" not in exc.value.text
    assert exc.value.reply.startswith("451 4.4.3")


def test_answers_from_the_cache_are_the_ones_asked_for(dns_server):
    # A delivery job asks MX, A, AAAA (and TLSA) for its destination every time: a cached
    # answer is read straight from dnspython's cache, with what an asked one gives.
    dns_server.add("c.test", "MX", "10 mx.c.test.")
    dns_server.add("mx.c.test", "A", "127.0.0.2")
    dns_server.add("mx.c.test", "AAAA", "::1")
    dns_server.signed.add("mx.c.test")
    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2, cache=True)
    first = [(h.name, h.addresses) for h in destination_hosts("c.test", r)]
    first_secure = r.secure_rdatas("mx.c.test", "A")
    asked = len(dns_server.queries)
    assert first == [("mx.c.test", ("127.0.0.2", "::1"))]
    assert [(h.name, h.addresses) for h in destination_hosts("c.test", r)] == first
    rdatas, secure = r.secure_rdatas("mx.c.test", "A")
    assert [x.to_text() for x in rdatas] == [x.to_text() for x in first_secure[0]] == ["127.0.0.2"]
    assert secure is first_secure[1] is True  # the AD bit of the cached response
    assert r.cached_rdatas("mx.c.test", "AAAA")[0].to_text() == "::1"
    assert len(dns_server.queries) == asked  # nothing asked again


def test_a_cached_mx_answer_is_not_converted_to_text_again(dns_server, monkeypatch):
    # Every delivery job to a destination reads the same cached MX answer: its exchanges'
    # names are made text once, not at each job.
    import dns.name

    dns_server.add("t.test", "MX", "10 mx.t.test.")
    dns_server.add("mx.t.test", "A", "127.0.0.2")
    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2, cache=True)
    first = [(h.name, h.addresses) for h in destination_hosts("t.test", r)]
    made = []
    to_text = dns.name.Name.to_text
    monkeypatch.setattr(
        dns.name.Name, "to_text", lambda *a, **k: made.append(1) or to_text(*a, **k)
    )
    for _ in range(3):
        assert [(h.name, h.addresses) for h in destination_hosts("t.test", r)] == first
    assert first == [("mx.t.test", ("127.0.0.2",))]
    assert made == []


def test_a_cached_answer_is_found_again_by_its_question_until_it_expires(dns_server, monkeypatch):
    # Port 25's checks ask the cache about the same few names for every message: an answer
    # found once is found by the question's text, without dnspython's name (its hash and
    # comparison), and only while the cache itself would still give it.
    import time

    dns_server.add("_dmarc.d.test", "TXT", '"v=DMARC1; p=none"')
    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2, cache=True)
    assert r.txt("_dmarc.d.test") == [b"v=DMARC1; p=none"]
    cache = r._resolver.cache
    gets = []
    real_get = cache.get
    monkeypatch.setattr(cache, "get", lambda key: gets.append(key) or real_get(key))
    for _ in range(3):
        found = r.cached_rdatas("_dmarc.d.test", "TXT")
        assert [x.to_text() for x in found] == ['"v=DMARC1; p=none"']
    assert len(gets) == 1  # found in the cache once, then by the question's text
    assert r.cached_rdatas("_dmarc.d.test", "A") is None  # never asked: not in the cache
    assert len(gets) == 3  # its type, then NXDOMAIN's entry
    expired = time.time() + 86_400 * 365
    monkeypatch.setattr(time, "time", lambda: expired)
    assert r.cached_rdatas("_dmarc.d.test", "TXT") is None  # expired: the cache decides
    assert len(gets) == 5


def test_cached_rdatas_reads_a_cached_nxdomain_without_raising(dns_server, monkeypatch):
    # Port 25's checks ask cached_rdatas about names without records about five times a
    # message: the empty answer comes back without an exception made and caught on the way.
    from delivery import dns as delivery_dns

    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2, cache=True)
    with pytest.raises(NoSuchDomain):
        r.txt("_dmarc.none.test")
    made = []

    class Counted(NoSuchDomain):
        def __init__(self, *args):
            made.append(args)
            super().__init__(*args)

    monkeypatch.setattr(delivery_dns, "NoSuchDomain", Counted)
    assert r.cached_rdatas("_dmarc.none.test", "TXT") == []
    assert r.cached_rdatas("_dmarc.none.test", "TXT") == []  # found by the question's text
    assert made == []
    with pytest.raises(NoSuchDomain):
        r.txt("_dmarc.none.test")  # a lookup's NXDOMAIN is still an exception


def test_a_cached_nxdomain_is_found_again_by_its_question_until_it_expires(dns_server, monkeypatch):
    # Most senders' HELO names and _dmarc names have no records: a cached NXDOMAIN is found
    # by the question's text too, still NXDOMAIN, and only while the cache would give it.
    import time

    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2, cache=True)
    with pytest.raises(NoSuchDomain):
        r.txt("_dmarc.none.test")
    asked = len(dns_server.queries)
    cache = r._resolver.cache
    gets = []
    real_get = cache.get
    monkeypatch.setattr(cache, "get", lambda key: gets.append(key) or real_get(key))
    assert r.cached_rdatas("_dmarc.none.test", "TXT") == []  # NXDOMAIN's entry: no records
    assert len(gets) == 2  # its type, then NXDOMAIN's entry
    for _ in range(3):
        with pytest.raises(NoSuchDomain):
            r.txt("_dmarc.none.test")
        assert r.cached_rdatas("_dmarc.none.test", "TXT") == []
    assert len(gets) == 2 and len(dns_server.queries) == asked
    expired = time.time() + 86_400 * 365
    monkeypatch.setattr(time, "time", lambda: expired)
    assert r.cached_rdatas("_dmarc.none.test", "TXT") is None  # expired: the cache decides
    assert len(gets) == 4


def test_a_cached_answer_found_again_reads_its_response_no_more(dns_server, monkeypatch):
    # Whether a kept answer is an NXDOMAIN is read from its response once, when it is kept,
    # not at each lookup (dnspython's rcode() costs more than the rest of the lookup).
    import dns.message

    dns_server.add("_dmarc.d.test", "TXT", '"v=DMARC1; p=none"')
    r = DNSPythonResolver(servers=[("127.0.0.1", dns_server.port)], timeout=2, cache=True)
    with pytest.raises(NoSuchDomain):
        r.txt("_dmarc.none.test")
    assert r.txt("_dmarc.d.test") == [b"v=DMARC1; p=none"]
    assert r.cached_rdatas("_dmarc.none.test", "TXT") == []  # both kept now
    assert r.cached_rdatas("_dmarc.d.test", "TXT") is not None
    reads = []
    rcode = dns.message.Message.rcode
    monkeypatch.setattr(dns.message.Message, "rcode", lambda m: reads.append(m) or rcode(m))
    for _ in range(3):
        with pytest.raises(NoSuchDomain):
            r.txt("_dmarc.none.test")
        assert r.cached_rdatas("_dmarc.none.test", "TXT") == []
        assert r.txt("_dmarc.d.test") == [b"v=DMARC1; p=none"]
    assert reads == []


def test_the_resolver_is_kept_until_the_dns_settings_change(settings, monkeypatch):
    # get_resolver is asked at every lookup of port 25's checks: the resolver of the current
    # settings is kept, without reading them, until they change or the resolvers are dropped.
    from delivery import dns as delivery_dns

    delivery_dns.set_resolver(None)
    delivery_dns.forget_resolvers()
    settings.MAILHOST_DNS_SERVERS = [("127.0.0.1", 9)]
    first = delivery_dns.get_resolver()

    class Unread:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"settings.{name} read")

    with monkeypatch.context() as patched:
        patched.setattr(delivery_dns, "settings", Unread())
        assert delivery_dns.get_resolver() is first
    settings.MAILHOST_DNS_SERVERS = [("127.0.0.1", 10)]
    second = delivery_dns.get_resolver()
    assert second is not first
    assert [n.port for n in second._resolver.nameservers] == [10]
    settings.MAILHOST_DNS_TIMEOUT = 3
    assert delivery_dns.get_resolver() is not second
    third = delivery_dns.get_resolver()
    delivery_dns.forget_resolvers()
    assert delivery_dns.get_resolver() is not third

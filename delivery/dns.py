"""Where mail for a domain goes: MX resolution (RFC 5321 5.1, RFC 7505 null MX).

`destination_hosts(domain)` applies the policy; a `Resolver` answers the raw questions. The
dnspython resolver asks settings.MAILHOST_DNS_SERVERS (or the system's resolvers); the
in-memory twin answers from dicts, for unit tests. Nothing resolves at import time.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from mailboxes.addresses import domain_to_ascii
from mailboxes.exceptions import InvalidAddress

if TYPE_CHECKING:
    import dns.resolver


class DNSError(Exception):
    """A lookup failed. `permanent` failures bounce; the rest are retried."""

    permanent = False
    status = "4.4.3"  # RFC 3463: directory server failure
    code = 451

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"


class DNSTemporaryError(DNSError):
    pass


class DNSPermanentError(DNSError):
    permanent = True
    status = "5.1.2"  # bad destination system address
    code = 550


class NullMXError(DNSPermanentError):
    # RFC 7505 3: "556 5.1.10" for a domain that declares it accepts no mail.
    status = "5.1.10"
    code = 556


class NoSuchDomain(DNSPermanentError):
    pass


# dns.flags.AD (RFC 4035 3.2.3) as a number: a response's flags are an enum.IntFlag, whose
# `&` is Python code of the enum module, on every delivery (secure_rdatas of its MX).
_AD = 0x0020

# _cached_answer's answer for a cached NXDOMAIN.
_NXDOMAIN = object()


class MXLoopError(DNSPermanentError):
    # RFC 3463 X.4.6 routing loop, as Postfix words it: "mail for <domain> loops back to myself".
    status = "5.4.6"
    code = 554


@dataclass(frozen=True)
class MXHost:
    name: str  # the exchange's name, or the literal address
    preference: int
    addresses: tuple[str, ...] = field(default=())


class Resolver(Protocol):
    def mx(self, domain: str) -> list[tuple[int, str]] | None:
        """(preference, exchange) pairs; None when the name exists but has no MX.

        Raises NoSuchDomain (NXDOMAIN) or DNSTemporaryError (SERVFAIL, timeout).
        """

    def addresses(self, name: str) -> list[str]:
        """IPv4 and IPv6 addresses of a host ([] when it has none).

        Raises NoSuchDomain or DNSTemporaryError like mx().
        """


def destination_hosts(domain: str, resolver: Resolver | None = None) -> list[MXHost]:
    """The hosts to try for `domain`, in order; raises DNSError.

    MX records sorted by preference, random among equals (RFC 5321 5.1); a domain without MX
    is its own implicit MX (its A/AAAA records); a null MX ("0 .") refuses all mail
    (RFC 7505). Exchanges whose names do not resolve are skipped; when none resolves the
    failure is temporary, since the receiving side may be mid-change.
    """
    resolver = resolver or get_resolver()
    literal = _address_literal(domain)
    if literal:
        return [MXHost(name=literal, preference=0, addresses=(literal,))]
    try:
        ascii_domain = _domain_ascii(domain)
    except InvalidAddress:
        raise NoSuchDomain(f"invalid domain name {domain!r}") from None
    records = resolver.mx(ascii_domain)
    if records is None:
        addresses = resolver.addresses(ascii_domain)
        if not addresses:
            raise DNSPermanentError(f"{ascii_domain} has no MX and no address records")
        return [MXHost(name=ascii_domain, preference=0, addresses=tuple(addresses))]
    exchanges = [(pref, name.rstrip(".").lower()) for pref, name in records]
    if any(name == "" for _, name in exchanges):
        if len(exchanges) == 1:
            raise NullMXError(f"{ascii_domain} does not accept mail (null MX)")
        exchanges = [(p, n) for p, n in exchanges if n]
    shuffled = exchanges[:]
    random.shuffle(shuffled)
    ordered = sorted(shuffled, key=lambda item: item[0])  # stable: equals stay shuffled
    hosts: list[MXHost] = []
    last_error: DNSError | None = None
    for preference, name in ordered:
        try:
            addresses = resolver.addresses(name)
        except DNSError as exc:
            last_error = exc
            continue
        if addresses:
            hosts.append(MXHost(name=name, preference=preference, addresses=tuple(addresses)))
    if not hosts:
        detail = f": {last_error.text}" if last_error else ""
        raise DNSTemporaryError(f"no MX host of {ascii_domain} has an address{detail}")
    return _without_ourselves(ascii_domain, hosts)


# The recipient domains of a delivery process are few and come again with every message
# to them; IDNA's checks and the labels' regular expression each time cost more than the
# rest of a cached MX lookup. A name that is refused (InvalidAddress) is not kept.
_domain_ascii = functools.lru_cache(maxsize=4096)(domain_to_ascii)


def _without_ourselves(domain: str, hosts: list[MXHost]) -> list[MXHost]:
    """RFC 5321 5.1: when we are one of the MX hosts (MAILHOST_HOSTNAME, or an address of
    MAILHOST_PUBLIC_ADDRESSES), only those more preferred than us may be tried; when none is,
    the mail would come back to us: a loop (a domain that points here but is not hosted)."""
    ours = set(settings.MAILHOST_PUBLIC_ADDRESSES)
    hostname = settings.MAILHOST_HOSTNAME.lower()
    for index, host in enumerate(hosts):
        if host.name == hostname or ours.intersection(host.addresses):
            kept = [h for h in hosts[:index] if h.preference < host.preference]
            if not kept:
                raise MXLoopError(f"mail for {domain} loops back to myself")
            return kept
    return hosts


def relay_hosts(host: str, resolver: Resolver | None = None) -> list[MXHost]:
    """The smart host: its own addresses, no MX lookup (an IP address is used as it is)."""
    try:
        return [MXHost(name=host, preference=0, addresses=(str(ipaddress.ip_address(host)),))]
    except ValueError:
        pass
    resolver = resolver or get_resolver()
    try:
        addresses = resolver.addresses(domain_to_ascii(host))
    except (NoSuchDomain, InvalidAddress) as exc:
        # A misconfigured relay must hold the mail, not bounce all of it.
        raise DNSTemporaryError(f"the relay host {host} does not resolve: {exc}") from None
    if not addresses:
        raise DNSTemporaryError(f"the relay host {host} has no address")
    return [MXHost(name=host, preference=0, addresses=tuple(addresses))]


def _address_literal(domain: str) -> str | None:
    # RFC 5321 4.1.3: [192.0.2.1] or [IPv6:2001:db8::1]
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    text = domain[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise NoSuchDomain(f"invalid address literal {domain!r}") from None


# --- dnspython ---------------------------------------------------------------------------


# Questions whose cached answers a resolver keeps by their text (DNSPythonResolver._found).
FOUND_KEPT = 4096


class DNSPythonResolver:
    """Real DNS through dnspython; MAILHOST_DNS_SERVERS (host, port) pairs override."""

    def __init__(
        self,
        servers: list[tuple[str, int]] | None = None,
        timeout: float | None = None,
        *,
        cache: bool = False,
    ) -> None:
        import dns.nameserver
        import dns.resolver

        servers = settings.MAILHOST_DNS_SERVERS if servers is None else servers
        if servers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
        else:
            resolver = dns.resolver.Resolver()
        # RFC 6840 5.7: AD in the query asks a validating resolver to say (AD in the answer)
        # that it validated the records; DANE (delivery/dane.py) trusts only such answers.
        import dns.flags

        resolver.flags = dns.flags.RD | dns.flags.AD
        resolver.lifetime = settings.MAILHOST_DNS_TIMEOUT if timeout is None else timeout
        resolver.timeout = min(resolver.lifetime, 5.0)
        if cache:
            resolver.cache = dns.resolver.LRUCache(10_000)  # thread-safe, honours TTLs
        self._resolver = resolver
        # The answers _cached_answer found in the cache, by the question as text, until they
        # expire: the cache's key is a dnspython name, whose hash (a Python loop over its
        # octets, a big integer) and comparison cost more than the rest of a lookup, which
        # port 25 makes about five times a message (SPF, DKIM, DMARC).
        self._found: dict[tuple[str, str], tuple[dns.resolver.Answer, bool]] = {}
        # mx()'s exchanges as text, with the answer they came from: the same cached answer
        # again (every delivery job to a destination) is not converted again (dnspython's
        # Name.to_text, about 17 us a name).
        self._mx_texts: dict[str, tuple[dns.resolver.Answer, list[tuple[int, str]]]] = {}

    def _query(self, name: str, rdtype: str):
        import dns.exception
        import dns.resolver

        cached = self._cached_answer(name, rdtype)
        if cached is _NXDOMAIN:
            raise NoSuchDomain(f"{name}: no such domain (NXDOMAIN)")
        if cached is not None:
            return cached[0]
        try:
            return self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise NoSuchDomain(f"{name}: no such domain (NXDOMAIN)") from None
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NoNameservers as exc:
            rcodes = _rcodes(exc)
            raise DNSTemporaryError(f"{name} {rdtype}: no nameserver answered ({rcodes})") from None
        except dns.exception.Timeout:
            raise DNSTemporaryError(f"{name} {rdtype}: DNS timeout") from None
        except dns.exception.DNSException as exc:
            raise DNSTemporaryError(f"{name} {rdtype}: {exc}") from None

    def _cached_answer(self, name: str, rdtype: str) -> tuple | None:
        """(the Answer, or None for a cached no-data answer) when resolve() would take it from
        the cache, _NXDOMAIN for a cached NXDOMAIN (not raised: port 25's cached_rdatas
        meets five a message in the bench); None when it would ask. A
        delivery job asks about its destination four times (MX, A, AAAA, TLSA), and a
        resolution's machinery around a cache hit cost more than the rest of the lookup;
        the entries read are those of dns.resolver._Resolution.next_request."""
        cache = self._resolver.cache
        if cache is None:
            return None
        found = self._found.get((name, rdtype))
        if found is not None and found[0].expiration > time.time():  # as the cache's get()
            answer, nxdomain = found
            if nxdomain:
                return _NXDOMAIN
            return (answer if answer.rrset is not None else None,)
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype

        question = _question(name, rdtype)
        if question is None:
            return None
        qname, qtype = question
        answer = cache.get((qname, qtype, dns.rdataclass.IN))
        if answer is not None:
            self._keep(name, rdtype, answer)
            return (answer if answer.rrset is not None else None,)
        answer = cache.get((qname, dns.rdatatype.ANY, dns.rdataclass.IN))
        if answer is not None and answer.response.rcode() == dns.rcode.NXDOMAIN:
            # Kept by the question's text too: port 25 asks about names without records
            # (SPF of a HELO, a _dmarc name) at every message from a sender.
            self._keep(name, rdtype, answer)
            return _NXDOMAIN
        return None

    def _keep(self, name: str, rdtype: str, answer: dns.resolver.Answer) -> None:
        """Keep the answer with whether it is an NXDOMAIN, read once: the response's rcode()
        (its flags and EDNS flags through two enum conversions) was read again at each of
        the six lookups a port 25 message makes, all NXDOMAIN in the bench (a sender's HELO
        and MAIL FROM domains, _dmarc names without a record): with the three imports
        before it, about 21,000 instructions a lookup."""
        import dns.rcode

        if len(self._found) >= FOUND_KEPT:
            self._found = {}
        nxdomain = answer.rrset is None and answer.response.rcode() == dns.rcode.NXDOMAIN
        self._found[(name, rdtype)] = (answer, nxdomain)

    def mx(self, domain: str) -> list[tuple[int, str]] | None:
        answer = self._query(domain, "MX")
        if answer is None:
            return None
        known = self._mx_texts.get(domain)
        if known is None or known[0] is not answer:
            if len(self._mx_texts) >= FOUND_KEPT:
                self._mx_texts = {}
            exchanges = [(r.preference, r.exchange.to_text(omit_final_dot=True)) for r in answer]
            known = self._mx_texts[domain] = (answer, exchanges)
        return list(known[1])

    def addresses(self, name: str) -> list[str]:
        # IPv4 first: a host without IPv6 routing fails fast on v6, but a blackholed v6 route
        # would cost a whole connect timeout per message.
        # A type whose lookup fails (an authoritative that answers A but REFUSED for AAAA)
        # does not hide the addresses the other type gave; only when neither gave any is
        # the failure the answer.
        result: list[str] = []
        failures: list[DNSTemporaryError] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._query(name, rdtype)
            except NoSuchDomain:
                if rdtype == "A":
                    raise
                answer = None
            except DNSTemporaryError as exc:
                failures.append(exc)
                answer = None
            if answer is not None:
                result.extend(r.address for r in answer)
        if not result and failures:
            raise DNSTemporaryError("; ".join(f.text for f in failures))
        return result

    def rdatas(self, name: str, rdtype: str) -> list:
        """The records of one type at a name, as dnspython rdata ([] when it has none)."""
        answer = self._query(name, rdtype)
        return list(answer) if answer is not None else []

    def cached_rdatas(self, name: str, rdtype: str) -> list | None:
        """rdatas() when its answer is in this resolver's cache ([] for a cached NXDOMAIN or
        no-data answer), None when the question would have to be asked. The same cache
        entries dnspython's own resolve() reads (dns.resolver._Resolution.next_request),
        without the machinery of a resolution around them."""
        cached = self._cached_answer(name, rdtype)
        if cached is _NXDOMAIN:
            return []
        if cached is None:
            return None
        return list(cached[0]) if cached[0] is not None else []

    def secure_rdatas(self, name: str, rdtype: str) -> tuple[list, bool]:
        """The records of one type at a name and whether the resolver validated them with
        DNSSEC (the AD bit, RFC 4035 3.2.3): only as trustworthy as the path to the
        resolver, so MAILHOST_DNS_SERVERS should be a validating resolver on this host."""
        answer = self._query(name, rdtype)
        if answer is None:
            return [], False
        return list(answer), bool(int(answer.response.flags) & _AD)

    def txt(self, name: str) -> list[bytes]:
        answer = self._query(name, "TXT")
        return [b"".join(r.strings) for r in answer] if answer is not None else []


def _rcodes(exc: Exception) -> str:
    """The rcodes the nameservers gave (REFUSED, SERVFAIL, ...) or their errors, as text."""
    # dnspython: errors are (server, tcp, port, rcode text or exception, response) tuples.
    seen = dict.fromkeys(str(error[3]) for error in exc.kwargs.get("errors") or ())
    return ", ".join(seen) or "no answer"


# --- the in-memory twin ------------------------------------------------------------------


@dataclass
class MemoryResolver:
    """Answers from dicts: mx_records[domain] = [(pref, host)], hosts[name] = [addresses].

    A name in neither dict is NXDOMAIN; a name in `failing` is SERVFAIL.
    """

    mx_records: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hosts: dict[str, list[str]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    def _check(self, name: str) -> None:
        if name in self.failing:
            raise DNSTemporaryError(f"{name}: SERVFAIL")
        if name not in self.mx_records and name not in self.hosts:
            raise NoSuchDomain(f"{name}: no such domain (NXDOMAIN)")

    def mx(self, domain: str) -> list[tuple[int, str]] | None:
        self._check(domain)
        return list(self.mx_records[domain]) if domain in self.mx_records else None

    def addresses(self, name: str) -> list[str]:
        self._check(name)
        return list(self.hosts.get(name, []))


@functools.lru_cache(maxsize=4096)
def _question(name: str, rdtype: str) -> tuple | None:
    """The cache key's name and type (None when they cannot be one): a port 25 message asks
    the cache about the same few names six times, and dnspython's parse of a name cost
    more than the lookup."""
    import dns.name
    import dns.rdatatype

    try:
        return dns.name.from_text(name), dns.rdatatype.from_text(rdtype)
    except Exception:
        return None


_resolver_override: Resolver | None = None
_resolvers: dict[tuple, DNSPythonResolver] = {}
_resolvers_lock = threading.Lock()
# The resolver of the settings as they are, until they change (_dns_settings_changed) or the
# resolvers are forgotten: port 25 asks get_resolver six times a message, and the key's two
# reads of Django's lazy settings and the lock cost more than the cached lookup after them.
_current: DNSPythonResolver | None = None


def get_resolver() -> Resolver:
    """The resolver delivery uses: the override set by tests, else dnspython.

    One dnspython resolver (with its TTL-honouring cache) per configuration, shared by the
    worker threads: mail for one domain comes in bursts, and each message would otherwise
    ask for the same MX and addresses again.
    """
    global _current
    if _resolver_override is not None:
        return _resolver_override
    current = _current
    if current is not None:
        return current
    key = (tuple(settings.MAILHOST_DNS_SERVERS), settings.MAILHOST_DNS_TIMEOUT)
    with _resolvers_lock:
        resolver = _resolvers.get(key)
        if resolver is None:
            resolver = _resolvers[key] = DNSPythonResolver(cache=True)
        _current = resolver
        return resolver


@receiver(setting_changed)
def _dns_settings_changed(*, setting: str, **kwargs: object) -> None:
    """Settings are the environment's, fixed for a process; tests change them (Django's
    override_settings), and the next get_resolver then reads them again."""
    global _current
    if setting in ("MAILHOST_DNS_SERVERS", "MAILHOST_DNS_TIMEOUT"):
        with _resolvers_lock:
            _current = None


# Bumped whenever the resolvers change: memos of answers (delivery/mtasts.py) keyed by it.
generation = 0


def forget_resolvers() -> None:
    """Drop the shared resolvers and their caches (tests start each zone afresh)."""
    global _current, generation
    with _resolvers_lock:
        _resolvers.clear()
        _current = None
        generation += 1


def set_resolver(resolver: Resolver | None) -> None:
    global _resolver_override, generation
    _resolver_override = resolver
    generation += 1

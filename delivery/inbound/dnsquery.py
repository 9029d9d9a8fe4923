"""The DNS questions the inbound checks ask, through delivery's resolver settings
(MAILHOST_DNS_SERVERS, MAILHOST_DNS_TIMEOUT), with one shared TTL-honouring cache."""

from __future__ import annotations

from delivery import dns as delivery_dns


def resolver() -> delivery_dns.DNSPythonResolver:
    """delivery's shared dnspython resolver; a test twin without `rdatas` (MemoryResolver)
    answers MX only, so the checks then use a dnspython resolver of their own."""
    current = delivery_dns.get_resolver()
    if isinstance(current, delivery_dns.DNSPythonResolver):
        return current
    return delivery_dns.DNSPythonResolver(cache=True)


def rdatas(name: str, rdtype: str) -> list:
    """Records of one type ([] for NXDOMAIN or no data); DNSTemporaryError on SERVFAIL or
    timeout. A cached answer is read straight from the cache."""
    current = resolver()
    found = current.cached_rdatas(name, rdtype)
    if found is not None:
        return found
    try:
        return current.rdatas(name, rdtype)
    except delivery_dns.NoSuchDomain:
        return []


def cached(name: str, rdtype: str = "TXT") -> bool:
    """Is the answer in the shared resolver's cache (so asking costs no wait)?"""
    return resolver().cached_rdatas(name, rdtype) is not None


def txt(name: str) -> list[bytes]:
    """TXT strings of a name, each record's strings joined (RFC 7208 3.3, RFC 6376 3.6.2.2)."""
    return [b"".join(r.strings) for r in rdatas(name, "TXT")]


def cached_txt(name: str) -> list[bytes] | None:
    """txt(name) when its answer is in the shared resolver's cache, else None."""
    found = resolver().cached_rdatas(name, "TXT")
    return None if found is None else [b"".join(r.strings) for r in found]


def exists(name: str) -> bool:
    """Does the name exist at all (DMARCbis np=)? NXDOMAIN holds for every type, so one
    question answers it."""
    try:
        resolver().rdatas(name, "A")
    except delivery_dns.NoSuchDomain:
        return False
    return True

"""DNS block and allow lists of client addresses (RFC 5782): a query for the reversed
address under each zone; an A record in 127.0.0.0/8 means listed. 127.255.255.0/24 answers
are the lists' error codes (Spamhaus: "you asked through a public resolver") and mean
nothing. Zones are asked concurrently, all together bounded by
MAILHOST_INBOUND_CHECK_TIMEOUT (each lookup by MAILHOST_DNS_TIMEOUT); a failing or late
lookup counts as not listed (and is logged), so DNS trouble never holds mail up for long."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError

from django.conf import settings

from delivery import dns

logger = logging.getLogger("mailhost.spam")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dnsbl")
        return _pool


def query_name(client_ip: str, zone: str) -> str | None:
    """The RFC 5782 2.1/2.4 query name, or None for an address lists do not hold."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.version == 4:
        reversed_ip = ".".join(reversed(str(address).split(".")))
    else:
        reversed_ip = ".".join(reversed(address.exploded.replace(":", "")))
    return f"{reversed_ip}.{zone}"


def _listed(name: str) -> list[str]:
    resolver = dns.get_resolver()
    try:
        if hasattr(resolver, "rdatas"):
            answers = [r.address for r in resolver.rdatas(name, "A")]
        else:
            answers = [a for a in resolver.addresses(name) if ":" not in a]
    except dns.NoSuchDomain:
        return []
    except dns.DNSError as exc:
        logger.warning("dnsbl_lookup_failed name=%s error=%s", name, exc.text)
        return []
    return [a for a in answers if a.startswith("127.") and not a.startswith("127.255.255.")]


def lookups(client_ip: str, zones: tuple[tuple[str, float], ...]) -> list[tuple[str, float, str]]:
    """(zone, score, first answer) for each zone that lists `client_ip`."""
    names = [(zone, score, query_name(client_ip, zone)) for zone, score in zones]
    asked = [(zone, score, name) for zone, score, name in names if name]
    if not asked:
        return []
    futures = [(zone, score, _executor().submit(_listed, name)) for zone, score, name in asked]
    # All the lists together get what the inbound checks get (MAILHOST_INBOUND_CHECK_TIMEOUT):
    # a list that has not answered by then counts as not listing the client.
    deadline = time.monotonic() + getattr(settings, "MAILHOST_INBOUND_CHECK_TIMEOUT", 20)
    found = []
    for zone, score, future in futures:
        try:
            answers = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            logger.warning("dnsbl_lookup_failed zone=%s error=timeout", zone)
            continue
        if answers:
            found.append((zone, score, answers[0]))
    return found

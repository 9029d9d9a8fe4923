"""SPF (RFC 7208) for the MAIL FROM and HELO identities, with pyspf's evaluator.

pyspf implements check_host() with the RFC's limits (4.6.4: 10 mechanisms or modifiers that
cause DNS lookups, 2 void lookups, 10 MX/PTR names) and every macro (7); we give it our DNS:
its module-level lookup function is pointed, once, at delivery's resolver settings.

An evaluation is a function of its inputs and of the DNS answers it read: a result is
remembered with the answers, and given again while the resolver's cache holds the very same
answers (a sender seen within the records' TTL), without evaluating again.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections import OrderedDict

import spf as pyspf

from delivery import dns as delivery_dns
from delivery.inbound import dnsquery
from delivery.inbound.results import SPFResult


class _Asked:
    """The DNS answers one evaluation read, in order; `complete` is False once one failed."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, str, list]] = []
        self.complete = True


_asking = threading.local()  # .asked: the _Asked of the evaluation running on this thread


def _lookup(name: str, qtype: str, strict=True, timeout: float = 20):  # noqa: ANN001, ANN202
    """pyspf's DNSLookup contract: [((name, type), data), ...]; TempError on failure."""
    asked = getattr(_asking, "asked", None)
    try:
        records = dnsquery.rdatas(name, qtype)
    except delivery_dns.DNSTemporaryError as exc:
        if asked is not None:
            asked.complete = False
        raise pyspf.TempError(f"DNS {exc.text}") from None
    if asked is not None:
        asked.answers.append((name, qtype, records))
    out = []
    for r in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, r.exchange.to_text(omit_final_dot=True))))
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(omit_final_dot=True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), r.strings))
    return out


pyspf.DNSLookup = _lookup  # the one DNS door pyspf has (it reads the global at each query)


def check_mailfrom(*, client_ip: str, mail_from: str, helo: str, timeout: float) -> SPFResult:
    """RFC 7208 2.4: the MAIL FROM identity; the null sender is checked as postmaster@HELO."""
    sender = mail_from or (f"postmaster@{helo}" if _is_domain(helo) else "")
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    if not sender or not _is_domain(domain):
        return SPFResult("none", "mailfrom", domain, sender, "no domain to check")
    return _check(client_ip, sender, helo, "mailfrom", domain, timeout)


def check_helo(*, client_ip: str, helo: str, timeout: float) -> SPFResult:
    """RFC 7208 2.3: the HELO identity, when it is a domain name (not an address literal)."""
    domain = helo.lower().rstrip(".")
    if not _is_domain(domain):
        return SPFResult("none", "helo", "", "", "HELO is not a domain name")
    return _check(client_ip, f"postmaster@{domain}", domain, "helo", domain, timeout)


def _check(
    client_ip: str, sender: str, helo: str, identity: str, domain: str, timeout: float
) -> SPFResult:
    if not _is_address(client_ip):
        return SPFResult("none", identity, domain, sender, "no client address")
    key = (client_ip, sender, helo, identity)
    known = _remembered(key)
    if known is not None:
        return known
    asked = _asking.asked = _Asked()
    try:
        # querytime bounds the whole evaluation (RFC 7208 4.6.4 asks for at least 20 s; our
        # MAILHOST_INBOUND_CHECK_TIMEOUT is the bound the operator chose).
        query = pyspf.query(
            i=client_ip,
            s=sender if identity == "mailfrom" else "",
            h=helo,
            timeout=timeout,
            querytime=timeout,
        )
        try:
            result, _code, explanation = query.check()
        except Exception as exc:  # pyspf raises on names it cannot encode, for one
            return SPFResult("permerror", identity, domain, sender, str(exc)[:200])
    finally:
        _asking.asked = None
    if result not in ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"):
        result = "permerror"
    outcome = SPFResult(result, identity, domain, sender, explanation or "")
    if asked.complete and result in _REMEMBERED_RESULTS:
        _remember(key, asked.answers, outcome)
    return outcome


# A fail's explanation may hold the time (RFC 7208 7.3, the "t" macro); temperror is not the
# answers' doing. The others are the same whenever the answers are.
_REMEMBERED_RESULTS = frozenset({"pass", "softfail", "neutral", "none", "permerror"})
REMEMBERED = 4096  # evaluations kept, the least recently used dropped
_remembered_results: OrderedDict[tuple, tuple[list, SPFResult]] = OrderedDict()
_remembered_lock = threading.Lock()


def _remember(key: tuple, answers: list, outcome: SPFResult) -> None:
    with _remembered_lock:
        _remembered_results[key] = (answers, outcome)
        _remembered_results.move_to_end(key)
        while len(_remembered_results) > REMEMBERED:
            _remembered_results.popitem(last=False)


def _remembered(key: tuple) -> SPFResult | None:
    """The remembered outcome when every answer it read is still the resolver's cached one."""
    with _remembered_lock:
        entry = _remembered_results.get(key)
        if entry is not None:
            _remembered_results.move_to_end(key)
    if entry is None:
        return None
    answers, outcome = entry
    resolver = dnsquery.resolver()
    for name, qtype, records in answers:
        if resolver.cached_rdatas(name, qtype) != records:
            return None
    return outcome


@functools.lru_cache(maxsize=1024)
def _is_address(text: str) -> bool:
    """Is the client's address an IP address? Kept for the addresses last asked: each
    message checks its client twice (MAIL FROM and HELO), and ip_address's parse of an IPv4
    address is about 15,000 instructions."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_domain(text: str) -> bool:
    text = text.rstrip(".")
    if not text or "." not in text or text.startswith("["):
        return False
    if ":" not in text and not text.replace(".", "").isdecimal():
        # Only an IPv6 address has a colon, and an IPv4 one is ASCII digits and dots: this
        # is a name, told without ip_address's two failed parses (7.7 us, twice a message).
        return True
    try:
        ipaddress.ip_address(text)
        return False
    except ValueError:
        return True

"""SPF (RFC 7208) for the MAIL FROM and HELO identities, with pyspf's evaluator.

pyspf implements check_host() with the RFC's limits (4.6.4: 10 mechanisms or modifiers that
cause DNS lookups, 2 void lookups, 10 MX/PTR names) and every macro (7); we give it our DNS:
its module-level lookup function is pointed, once, at delivery's resolver settings.
"""

from __future__ import annotations

import ipaddress

import spf as pyspf

from delivery import dns as delivery_dns
from delivery.inbound import dnsquery
from delivery.inbound.results import SPFResult


def _lookup(name: str, qtype: str, strict=True, timeout: float = 20):  # noqa: ANN001, ANN202
    """pyspf's DNSLookup contract: [((name, type), data), ...]; TempError on failure."""
    try:
        records = dnsquery.rdatas(name, qtype)
    except delivery_dns.DNSTemporaryError as exc:
        raise pyspf.TempError(f"DNS {exc.text}") from None
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
    try:
        ipaddress.ip_address(client_ip)
    except ValueError:
        return SPFResult("none", identity, domain, sender, "no client address")
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
    if result not in ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"):
        result = "permerror"
    return SPFResult(result, identity, domain, sender, explanation or "")


def _is_domain(text: str) -> bool:
    text = text.rstrip(".")
    if not text or "." not in text or text.startswith("["):
        return False
    try:
        ipaddress.ip_address(text)
        return False
    except ValueError:
        return True

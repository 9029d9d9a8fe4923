"""DMARC (RFC 7489, with DMARCbis's np= and t= tags): the policy record, the organizational
domain from the Public Suffix List, identifier alignment and the disposition.

Pure functions apart from the record lookups, which the caller passes in (`fetch(name)`
returns the TXT strings or raises DNSTemporaryError), so the checks can ask them
concurrently and the rules are tested without DNS.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from delivery import dns as delivery_dns
from delivery.inbound.results import DKIMResult, DMARCResult, SPFResult

_psl = None
_psl_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def org_domain(domain: str) -> str:
    """RFC 7489 3.2: the public suffix plus one label (the domain itself when it is a
    public suffix). Kept for the domains last asked: the list is the one the package ships,
    read once, so a domain's answer never changes, and port 25 asks three times a message
    (the From domain's DMARC record, its evaluation and its lookup), about 13,000
    instructions each."""
    global _psl
    if _psl is None:
        with _psl_lock:
            if _psl is None:
                from publicsuffixlist import PublicSuffixList

                _psl = PublicSuffixList()  # the list the package ships
    domain = domain.lower().rstrip(".")
    return _psl.privatesuffix(domain) or domain


@dataclass(frozen=True)
class Record:
    p: str
    sp: str
    np: str
    adkim: str  # "r" or "s"
    aspf: str
    pct: int
    testing: bool  # DMARCbis t=y


class RecordError(ValueError):
    pass


def parse_record(text: str) -> Record:
    """RFC 7489 6.3 / 6.4; raises RecordError for what is not a usable DMARC record."""
    tags: dict[str, str] = {}
    for index, part in enumerate(text.split(";")):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not sep:
            raise RecordError(f"tag without a value: {part!r}")
        if index == 0 and (name != "v" or value != "DMARC1"):
            raise RecordError("the record does not start with v=DMARC1")
        tags.setdefault(name, value)
    policies = ("none", "quarantine", "reject")
    p = tags.get("p", "").lower()
    if p not in policies:
        # RFC 7489 6.6.3: a record with a bad p= but a valid rua is treated as p=none;
        # without p= at all DMARCbis also falls back to none.
        if "p" in tags and "rua" not in tags:
            raise RecordError(f"invalid p={tags['p']!r}")
        p = "none"
    sp = tags.get("sp", "").lower()
    sp = sp if sp in policies else p
    np = tags.get("np", "").lower()
    np = np if np in policies else sp
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return Record(
        p=p,
        sp=sp,
        np=np,
        adkim="s" if tags.get("adkim", "r").lower() == "s" else "r",
        aspf="s" if tags.get("aspf", "r").lower() == "s" else "r",
        pct=pct,
        testing=tags.get("t", "n").lower() == "y",
    )


def _aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """RFC 7489 3.1: strict is the same name; relaxed the same organizational domain."""
    identifier = identifier.lower().rstrip(".")
    if not identifier:
        return False
    if identifier == from_domain:
        return True
    return mode == "r" and org_domain(identifier) == org_domain(from_domain)


def find_record(
    from_domain: str, fetch: Callable[[str], list[bytes]]
) -> tuple[Record | None, str, str]:
    """RFC 7489 6.6.3: _dmarc.<From domain>, else _dmarc.<organizational domain>. Returns
    (record, the domain it was found at, error); DNSTemporaryError propagates."""
    org = org_domain(from_domain)
    for domain in dict.fromkeys((from_domain, org)):
        records = [t for t in fetch(f"_dmarc.{domain}") if t[:8].lower() == b"v=dmarc1"]
        if len(records) > 1:
            return None, domain, "more than one DMARC record"  # RFC 7489 6.6.3 step 5
        if records:
            try:
                return parse_record(records[0].decode("utf-8", "replace")), domain, ""
            except RecordError as exc:
                if domain == org:
                    return None, domain, str(exc)
                continue
    return None, "", ""


def evaluate(
    *,
    from_domain: str,
    spf: SPFResult,
    dkim: tuple[DKIMResult, ...],
    fetch: Callable[[str], list[bytes]],
    domain_exists: Callable[[str], bool] | None = None,
    sample: Callable[[], float] = random.random,
) -> DMARCResult:
    """The DMARC result and the disposition for one RFC5322.From domain."""
    from_domain = from_domain.lower().rstrip(".")
    org = org_domain(from_domain)
    try:
        record, found_at, error = find_record(from_domain, fetch)
    except delivery_dns.DNSTemporaryError as exc:
        return DMARCResult("temperror", from_domain, org_domain=org, reason=exc.text)
    if record is None:
        if error:
            return DMARCResult("permerror", from_domain, org_domain=org, reason=error)
        return DMARCResult("none", from_domain, org_domain=org, reason="no DMARC record")
    spf_aligned = (
        spf.passed and spf.identity == "mailfrom" and _aligned(spf.domain, from_domain, record.aspf)
    )
    dkim_aligned = any(
        sig.passed and _aligned(sig.domain, from_domain, record.adkim) for sig in dkim
    )
    if found_at == from_domain:
        policy = record.p
    elif domain_exists is not None and record.np != record.sp and not domain_exists(from_domain):
        policy = record.np  # DMARCbis: the policy for non-existent subdomains
    else:
        policy = record.sp
    if spf_aligned or dkim_aligned:
        return DMARCResult(
            "pass",
            from_domain,
            policy=policy,
            org_domain=org,
            spf_aligned=spf_aligned,
            dkim_aligned=dkim_aligned,
        )
    # A temporary failure of a check that could have aligned is no proof of forgery: the
    # message is let through with the result recorded (RFC 7489 6.6.2 leaves it to us).
    maybe = (
        spf.result == "temperror"
        and spf.identity == "mailfrom"
        and _aligned(spf.domain, from_domain, record.aspf)
    ) or any(
        sig.result == "temperror" and _aligned(sig.domain, from_domain, record.adkim)
        for sig in dkim
    )
    if maybe:
        return DMARCResult(
            "temperror",
            from_domain,
            policy=policy,
            org_domain=org,
            reason="an aligned check could not be completed",
        )
    disposition, override = policy, ""
    # RFC 7489 6.6.4: a message left out of pct% gets the next policy down; DMARCbis t=y
    # asks for the same as pct=0.
    if policy != "none" and (record.testing or sample() * 100 >= record.pct):
        disposition = "quarantine" if policy == "reject" else "none"
        override = "sampled_out"
    return DMARCResult(
        "fail",
        from_domain,
        policy=policy,
        disposition=disposition,
        org_domain=org,
        override=override,
        reason="neither SPF nor DKIM aligned with the From domain",
    )

"""authenticate(): SPF, DKIM, ARC and DMARC for one message received on port 25, computed once.

Every DNS question is asked at once on a small thread pool (SPF for MAIL FROM and for HELO,
each DKIM and ARC key, the DMARC records), and the whole is bounded by
MAILHOST_INBOUND_CHECK_TIMEOUT: what has no answer by then is a temperror, and a temperror
never refuses mail. The signatures are verified on the bytes as received.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import dkim
from django.conf import settings
from dkim.util import InvalidTagValueList, parse_tag_value

from delivery import dns as delivery_dns
from delivery.inbound import dmarc as dmarc_rules
from delivery.inbound import dnsquery, rsaverify
from delivery.inbound import spf as spf_check
from delivery.inbound.results import (
    ARCResult,
    AuthResults,
    DKIMResult,
    DMARCResult,
    SPFResult,
)
from mailboxes import headers

logger = logging.getLogger(__name__)

rsaverify.install()

# RFC 6376 6.1: a verifier MAY limit the number of signatures it tries; each costs a DNS
# question and an RSA operation, and a message can carry thousands.
MAX_SIGNATURES = 8
MAX_ARC_INSTANCES = 50  # RFC 8617 4.2.1: i= is at most 50
POOL_THREADS = 16

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="inbound-dns")
        return _pool


class _Answered:
    """A result known already, read as a Future's (`result(timeout)`): what a cached answer
    gives. A concurrent.futures.Future is a Condition, its lock and a waiters list made and
    taken for a value nobody waits for, about 20,000 instructions each; port 25 made four a
    message from a sender seen before (SPF for MAIL FROM and HELO, two DMARC records)."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: object = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    def result(self, timeout: float | None = None) -> object:
        if self._error is not None:
            raise self._error
        return self._value


class _Lookups:
    """TXT answers asked once each, concurrently, with one deadline for all."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.futures: dict[str, Future | _Answered] = {}
        self.temporary: set[str] = set()

    def start(self, name: str) -> None:
        name = name.lower().rstrip(".")
        if name not in self.futures:
            cached = dnsquery.cached_txt(name)  # one look at the cache, not two (_soon's)
            if cached is None:
                self.futures[name] = _executor().submit(dnsquery.txt, name)
            else:
                self.futures[name] = _Answered(cached)

    def get(self, name: str) -> list[bytes]:
        """The answer; DNSTemporaryError when it failed or did not come in time."""
        name = name.lower().rstrip(".")
        self.start(name)
        try:
            return self.futures[name].result(timeout=max(0.0, self.deadline - time.monotonic()))
        except FutureTimeout:
            self.temporary.add(name)
            raise delivery_dns.DNSTemporaryError(f"{name} TXT: no answer in time") from None
        except delivery_dns.DNSTemporaryError:
            self.temporary.add(name)
            raise

    def dkimpy(self, name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's dnsfunc: the first TXT record, None when there is none."""
        try:
            records = self.get(name.decode("ascii", "replace"))
        except delivery_dns.DNSTemporaryError:
            return None
        return records[0] if records else None


def _soon(name: str, fn: Callable, /, *args: object, **kwargs: object) -> Future | _Answered:
    """fn's result as a future: computed at once when the TXT answer at `name` is in the
    resolver's cache (the usual case for a sender seen before: a thread hop would cost more
    CPU than the work), else on the pool, concurrently with the other checks."""
    if not dnsquery.cached(name):
        return _executor().submit(fn, *args, **kwargs)
    try:
        return _Answered(fn(*args, **kwargs))
    except Exception as exc:
        return _Answered(error=exc)


def authenticate(*, raw: bytes, client_ip: str, helo: str, mail_from: str) -> AuthResults:
    """SPF (MAIL FROM and HELO), DKIM, ARC and DMARC for `raw` as it arrived from `client_ip`."""
    timeout = settings.MAILHOST_INBOUND_CHECK_TIMEOUT
    deadline = time.monotonic() + timeout
    lookups = _Lookups(deadline)
    fields = _fields(headers.header_block(raw))
    signatures = _signature_tags(fields, b"dkim-signature")[:MAX_SIGNATURES]
    arc_seals = _signature_tags(fields, b"arc-seal")[:MAX_ARC_INSTANCES]
    arc_signatures = _signature_tags(fields, b"arc-message-signature")[:MAX_ARC_INSTANCES]
    for tags in signatures + arc_seals + arc_signatures:
        if tags.get(b"s") and tags.get(b"d"):
            lookups.start(_key_name(tags))
    from_domains = _from_domains(fields)
    for domain in from_domains:
        lookups.start(f"_dmarc.{domain}")
        lookups.start(f"_dmarc.{dmarc_rules.org_domain(domain)}")
    sender_domain = _domain_of(mail_from) if "@" in mail_from else helo.lower()
    spf_future = _soon(
        sender_domain,
        spf_check.check_mailfrom,
        client_ip=client_ip,
        mail_from=mail_from,
        helo=helo,
        timeout=timeout,
    )
    helo_future = _soon(
        helo.lower(), spf_check.check_helo, client_ip=client_ip, helo=helo, timeout=timeout
    )

    dkim_results = _verify_dkim(raw, signatures, lookups) if signatures else ()
    arc = _verify_arc(raw, fields, lookups) if arc_seals else ARCResult("none")
    spf = _outcome(
        spf_future,
        deadline,
        lambda: SPFResult("temperror", "mailfrom", _domain_of(mail_from), mail_from, "timeout"),
    )
    spf_helo = _outcome(
        helo_future, deadline, lambda: SPFResult("temperror", "helo", helo, "", "timeout")
    )
    dmarc = _dmarc(from_domains, spf, dkim_results, arc, lookups)
    return AuthResults(
        authserv_id=settings.MAILHOST_HOSTNAME,
        spf=spf,
        spf_helo=spf_helo,
        dkim=dkim_results,
        arc=arc,
        dmarc=dmarc,
        client_ip=client_ip,
    )


def _outcome(
    future: Future | _Answered, deadline: float, late: Callable[[], SPFResult]
) -> SPFResult:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return late()


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _key_name(tags: dict[bytes, bytes]) -> str:
    selector = tags[b"s"].decode("ascii", "replace").strip()
    domain = tags[b"d"].decode("ascii", "replace").strip()
    return f"{selector}._domainkey.{domain}"


_FIELD_START = re.compile(rb"(?im)^([!-9;-~]+)[ \t]*:")
# Compiled once, not looked up in re's cache by the pattern's text at each message.
_LINE_END = re.compile(rb"\r?\n")
_FOLDING = re.compile(r"\r?\n[ \t]")


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value with its folding) for each field of a header section."""
    out: list[tuple[bytes, bytes]] = []
    for line in _LINE_END.split(head):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b"\r\n" + line)
            continue
        name, sep, value = line.partition(b":")
        if sep:
            out.append((name.strip(), value))
    return out


def _signature_tags(fields: list[tuple[bytes, bytes]], name: bytes) -> list[dict[bytes, bytes]]:
    out = []
    for field_name, value in fields:
        if field_name.lower() != name:
            continue
        try:
            out.append(parse_tag_value(value))
        except (InvalidTagValueList, ValueError):
            out.append({})
    return out


def _from_domains(fields: list[tuple[bytes, bytes]]) -> list[str]:
    """The RFC5322.From domains (RFC 7489 6.6.1), lower-case and distinct."""
    # The white space before a value is the parser's to skip; taken off here as compat32
    # takes it off, so that an unfolded From is the very text the spam rules read, and
    # address_pairs parses it once for both.
    values = [
        headers.header_text(
            _FOLDING.sub(" ", value.decode("utf-8", "surrogateescape")).lstrip(" \t")
        )
        for name, value in fields
        if name.lower() == b"from"
    ]
    try:
        addresses = headers.address_pairs(values)
    except (RecursionError, ValueError, IndexError):
        return []
    domains = []
    for _, address in addresses:
        domain = address.rpartition("@")[2].strip().lower().rstrip(".")
        if "@" in address and domain and "." in domain and domain not in domains:
            domains.append(domain)
    return domains


def _verify_dkim(
    raw: bytes, signatures: list[dict[bytes, bytes]], lookups: _Lookups
) -> tuple[DKIMResult, ...]:
    """RFC 6376 6: every signature (up to MAX_SIGNATURES), each with its own result."""
    try:
        verifier = dkim.DKIM(raw, minkey=1024, logger=_quiet)
    except dkim.DKIMException as exc:
        return tuple(_dkim_result(tags, "permerror", str(exc)) for tags in signatures)
    results = []
    for index, tags in enumerate(signatures):
        verifier.pk = None
        try:
            ok = verifier.verify(idx=index, dnsfunc=lookups.dkimpy)
        except dkim.KeyFormatError as exc:
            results.append(_dkim_result(tags, "permerror", str(exc)))
            continue
        except dkim.DKIMException as exc:
            # With the key in hand the message is at fault (body hash mismatch): fail;
            # before it, the signature itself is unusable: permerror (RFC 6376 6.1.1).
            broken = "fail" if verifier.pk is not None else "permerror"
            results.append(_dkim_result(tags, broken, str(exc)))
            continue
        if ok:
            results.append(_dkim_result(tags, "pass"))
        elif verifier.pk is not None:
            results.append(_dkim_result(tags, "fail", "signature did not verify"))
        elif tags.get(b"s") and _key_name(tags).lower() in lookups.temporary:
            results.append(_dkim_result(tags, "temperror", "key lookup failed"))
        else:
            results.append(_dkim_result(tags, "permerror", "no usable key"))
    return tuple(results)


def _dkim_result(tags: dict[bytes, bytes], result: str, reason: str = "") -> DKIMResult:
    b = re.sub(rb"\s+", b"", tags.get(b"b", b""))[:8]
    return DKIMResult(
        result,
        domain=tags.get(b"d", b"").decode("ascii", "replace").strip().lower(),
        selector=tags.get(b"s", b"").decode("ascii", "replace").strip(),
        b=b.decode("ascii", "replace"),
        reason=reason,
    )


_AAR_RESULT = re.compile(rb"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)
_INSTANCE = re.compile(rb"(?:^|;)\s*i\s*=\s*(\d+)")


def _verify_arc(raw: bytes, fields: list[tuple[bytes, bytes]], lookups: _Lookups) -> ARCResult:
    """RFC 8617 5.2 chain validation with dkimpy; the sealers newest first."""
    try:
        cv, data, reason = dkim.ARC(raw, minkey=1024, logger=_quiet).verify(dnsfunc=lookups.dkimpy)
    except dkim.DKIMException as exc:
        cv, data, reason = dkim.CV_Fail, [], str(exc)
    sealers = tuple(
        d.get("as-domain", b"").decode("ascii", "replace").lower() for d in data if d
    )  # dkimpy lists the newest instance first
    if cv == dkim.CV_Pass:
        result = "pass"
    elif cv == dkim.CV_None and not data:
        result = "none"
    else:
        result = "fail"
        if any(name in lookups.temporary for name in _arc_key_names(data)):
            result = "temperror"
    sealed: dict[int, tuple[tuple[str, str], ...]] = {}
    for name, value in fields:
        if name.lower() != b"arc-authentication-results":
            continue
        match = _INSTANCE.search(value.strip())
        if match:
            found = _AAR_RESULT.findall(value.split(b";", 2)[-1] if b";" in value else value)
            sealed[int(match.group(1))] = tuple(
                (m.decode().lower(), r.decode().lower()) for m, r in found
            )
    return ARCResult(
        result,
        sealers=sealers,
        instances=len(data),
        reason=reason if isinstance(reason, str) else str(reason),
        sealed_results=sealed.get(len(data), ()) if data else (),
    )


def _arc_key_names(data: list[dict]) -> list[str]:
    names = []
    for d in data:
        for prefix in ("as", "ams"):
            selector, domain = d.get(f"{prefix}-selector"), d.get(f"{prefix}-domain")
            if selector and domain:
                names.append(f"{selector.decode()}._domainkey.{domain.decode()}".lower())
    return names


def _dmarc(
    from_domains: list[str],
    spf: SPFResult,
    dkim_results: tuple[DKIMResult, ...],
    arc: ARCResult,
    lookups: _Lookups,
) -> DMARCResult:
    """RFC 7489 6.6: the From domain's policy; with several From domains, the strictest."""
    if not from_domains:
        return DMARCResult("none", reason="no From domain")
    results = [
        dmarc_rules.evaluate(
            from_domain=domain,
            spf=spf,
            dkim=dkim_results,
            fetch=lookups.get,
            domain_exists=_exists_or_assume,
        )
        for domain in from_domains
    ]
    order = {"reject": 2, "quarantine": 1, "none": 0}
    rank = {"fail": 4, "temperror": 3, "permerror": 2, "none": 1, "pass": 0}
    worst = max(results, key=lambda r: (order[r.disposition], rank[r.result]))
    if worst.result == "fail" and worst.disposition != "none":
        trusted = _trusted_forwarder(arc)
        if trusted:
            return DMARCResult(
                worst.result,
                worst.domain,
                policy=worst.policy,
                disposition="none",
                org_domain=worst.org_domain,
                override="trusted_forwarder",
                reason=f"ARC sealed by {trusted}, which saw DMARC pass",
            )
    return worst


def _trusted_forwarder(arc: ARCResult) -> str:
    """RFC 7489 7.2 local policy: a valid ARC chain whose newest seal is by a trusted
    forwarder that recorded dmarc=pass (RFC 8617 7.2.1) overrides a DMARC failure."""
    trusted = set(settings.MAILHOST_ARC_TRUSTED_SEALERS)
    if arc.result != "pass" or not arc.sealers or arc.sealers[0] not in trusted:
        return ""
    if ("dmarc", "pass") in arc.sealed_results:
        return arc.sealers[0]
    return ""


def _exists_or_assume(domain: str) -> bool:
    try:
        return dnsquery.exists(domain)
    except delivery_dns.DNSTemporaryError:
        return True  # unknown: the subdomain policy, not the stricter np=


class _QuietLogger:
    """dkimpy logs every failed signature at ERROR; the result says it already."""

    def debug(self, *args: object, **kwargs: object) -> None:
        pass

    info = warning = error = debug


_quiet = _QuietLogger()

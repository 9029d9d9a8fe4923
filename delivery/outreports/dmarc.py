"""DMARC aggregate reports, the sending side (RFC 7489 7.2, appendix C): where a domain wants
them (rua, with the external destination check of 7.1) and the XML of one report."""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass

from delivery.inbound import dmarc as dmarc_rules
from delivery.inbound import dnsquery

_SIZE = re.compile(r"^(\d+)([kmgt]?)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}  # RFC 7489 6.2


@dataclass(frozen=True)
class Destination:
    address: str
    max_size: int | None = None  # bytes; None: no limit given


@dataclass(frozen=True)
class Policy:
    """The DMARC record a report is about: where it was found and what it published."""

    domain: str  # the domain the record was found at (From domain or organizational domain)
    record: dmarc_rules.Record
    rua: tuple[str, ...]


def record_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def policy_for(from_domain: str) -> Policy | None:
    """The DMARC policy that applies to mail from `from_domain` (RFC 7489 6.6.3), with its
    rua URIs; None without a usable record. DNSTemporaryError propagates."""
    record, found_at, _ = dmarc_rules.find_record(from_domain, dnsquery.txt)
    if record is None:
        return None
    texts = [t for t in dnsquery.txt(f"_dmarc.{found_at}") if t[:8].lower() == b"v=dmarc1"]
    if len(texts) != 1:
        return None
    tags = record_tags(texts[0].decode("utf-8", "replace"))
    rua = tuple(u.strip() for u in tags.get("rua", "").split(",") if u.strip())
    return Policy(found_at, record, rua)


def destinations(policy: Policy) -> list[Destination]:
    """The rua mailto addresses that may receive the policy domain's reports: those in the
    same organizational domain, and those whose domain says it takes them by publishing
    `<policy domain>._report._dmarc.<their domain>` (RFC 7489 7.1). Others are skipped, as
    are URIs of other schemes. DNSTemporaryError propagates (try again later)."""
    found = []
    for uri in policy.rua:
        if not uri.lower().startswith("mailto:"):
            continue
        address, _, size = uri[len("mailto:") :].partition("!")
        address = _unquote(address.strip())
        local, sep, host = address.rpartition("@")
        if not sep or not local or not host:
            continue
        max_size = None
        if size:
            match = _SIZE.match(size.strip())
            if match is None:
                continue
            max_size = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if not external_allowed(policy.domain, host):
            continue
        found.append(Destination(f"{local}@{host.lower()}", max_size))
    return found


def external_allowed(policy_domain: str, host: str) -> bool:
    host = host.lower().rstrip(".")
    if dmarc_rules.org_domain(host) == dmarc_rules.org_domain(policy_domain):
        return True
    records = dnsquery.txt(f"{policy_domain}._report._dmarc.{host}")
    return any(r[:8].lower() == b"v=dmarc1" for r in records)


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


# --- The report (RFC 7489 appendix C) ---------------------------------------------------------


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, name)
    if text is not None:
        element.text = text
    return element


def build_report(
    *,
    policy: Policy,
    day: datetime.date,
    rows,  # noqa: ANN001 - DmarcEvaluation rows
    org_name: str,
    email: str,
    report_id: str,
) -> bytes:
    """The XML of one aggregate report: rows with the same source, identifiers, results and
    disposition are counted together (appendix C RecordType)."""
    begin = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    end = begin + datetime.timedelta(days=1) - datetime.timedelta(seconds=1)
    root = ET.Element("feedback")
    _sub(root, "version", "1.0")
    meta = _sub(root, "report_metadata")
    _sub(meta, "org_name", org_name)
    _sub(meta, "email", email)
    _sub(meta, "report_id", report_id)
    dates = _sub(meta, "date_range")
    _sub(dates, "begin", str(int(begin.timestamp())))
    _sub(dates, "end", str(int(end.timestamp())))
    record = policy.record
    published = _sub(root, "policy_published")
    _sub(published, "domain", policy.domain)
    _sub(published, "adkim", record.adkim)
    _sub(published, "aspf", record.aspf)
    _sub(published, "p", record.p)
    _sub(published, "sp", record.sp)
    _sub(published, "pct", str(record.pct))
    groups: Counter[tuple] = Counter()
    for row in rows:
        groups[
            (
                row.source_ip,
                row.disposition,
                row.dkim_aligned,
                row.spf_aligned,
                row.override,
                row.header_from,
                row.envelope_from,
                tuple(tuple(d) for d in row.dkim),
                (row.spf_domain, row.spf_scope, row.spf_result),
            )
        ] += 1
    for key in sorted(groups, key=lambda k: (-groups[k], k)):
        ip, disposition, dkim_ok, spf_ok, override, header_from, envelope_from, dkim, spf = key
        item = _sub(root, "record")
        row_el = _sub(item, "row")
        _sub(row_el, "source_ip", ip)
        _sub(row_el, "count", str(groups[key]))
        evaluated = _sub(row_el, "policy_evaluated")
        _sub(evaluated, "disposition", disposition)
        _sub(evaluated, "dkim", "pass" if dkim_ok else "fail")
        _sub(evaluated, "spf", "pass" if spf_ok else "fail")
        if override:
            reason = _sub(evaluated, "reason")
            _sub(reason, "type", override)
        identifiers = _sub(item, "identifiers")
        if envelope_from:
            _sub(identifiers, "envelope_from", envelope_from)
        _sub(identifiers, "header_from", header_from)
        auth = _sub(item, "auth_results")
        for domain, selector, result in dkim:
            entry = _sub(auth, "dkim")
            _sub(entry, "domain", domain)
            if selector:
                _sub(entry, "selector", selector)
            _sub(entry, "result", result)
        entry = _sub(auth, "spf")
        _sub(entry, "domain", spf[0])
        _sub(entry, "scope", spf[1])
        _sub(entry, "result", spf[2])
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"

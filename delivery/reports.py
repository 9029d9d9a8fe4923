"""Aggregate reports that other receivers send about our domains, read without I/O.

- DMARC aggregate reports (RFC 7489 7.2 and appendix C; the DMARCbis schema with its XML
  namespace reads the same): XML, usually gzip (`.xml.gz`) or zip attached.
- SMTP TLS reports (RFC 8460 4, 5.3): JSON, `application/tlsrpt+gzip` or `+json`.

They come to the addresses `manage.py dnsrecords` publishes (delivery/dnsrecords.py:
dmarc-reports@DOMAIN in _dmarc, tls-reports@DOMAIN in _smtp._tls); message_accept hands the
message here and stores what comes back (delivery.services.report_store).

The XML is parsed by defusedxml (no entity expansion, no external entities, no DTDs);
compressed parts are inflated with a cap (MAX_REPORT_BYTES), so a zip bomb costs nothing.
A message may carry several reports; anything unreadable is skipped with a reason.
"""

from __future__ import annotations

import io
import ipaddress
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_REPORT_BYTES = 20 * 1024 * 1024  # one report, inflated (Google's largest run to a few MB)
MAX_RECORDS = 20_000  # rows of one DMARC report, policies of one TLS report
MAX_PARTS = 20  # report parts read from one message


class ReportError(ValueError):
    """A part that looked like a report and is not a readable one."""


@dataclass(frozen=True)
class DmarcRow:
    source_ip: str
    count: int
    disposition: str  # none | quarantine | reject (DMARCbis: pass too)
    dkim: str  # DMARC's aligned DKIM verdict: pass | fail
    spf: str  # DMARC's aligned SPF verdict: pass | fail
    header_from: str
    envelope_from: str = ""
    dkim_results: tuple[tuple[str, str, str], ...] = ()  # (domain, selector, result)
    spf_results: tuple[tuple[str, str, str], ...] = ()  # (domain, scope, result)


@dataclass(frozen=True)
class DmarcAggregate:
    org_name: str
    org_email: str
    report_id: str
    begin: datetime
    end: datetime
    policy_domain: str
    policy: str = ""  # p
    subdomain_policy: str = ""  # sp
    pct: int | None = None
    adkim: str = ""
    aspf: str = ""
    rows: tuple[DmarcRow, ...] = ()


@dataclass(frozen=True)
class TlsPolicy:
    policy_type: str  # sts | tlsa | no-policy-found
    policy_domain: str
    mx_hosts: tuple[str, ...]
    successful: int
    failed: int
    failure_details: tuple[dict, ...] = ()


@dataclass(frozen=True)
class TlsAggregate:
    org_name: str
    contact: str
    report_id: str
    begin: datetime
    end: datetime
    policies: tuple[TlsPolicy, ...] = ()


@dataclass
class Extracted:
    reports: list[DmarcAggregate | TlsAggregate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --- Finding the report in the message ----------------------------------------------------

_GZIP_TYPES = {"application/gzip", "application/x-gzip", "application/tlsrpt+gzip"}
_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}
_PLAIN_TYPES = {
    "text/xml",
    "application/xml",
    "application/json",
    "application/tlsrpt+json",
    "text/json",
}


def from_message(raw: bytes) -> Extracted:
    """Every report in a report message (attached or as the body)."""
    found = Extracted()
    message = message_from_bytes(raw, policy=compat32)
    parts = 0
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = _payload(part)
        if payload is None:
            continue
        kind = _container(part, payload)
        if kind is None:
            continue
        parts += 1
        if parts > MAX_PARTS:
            found.problems.append(f"more than {MAX_PARTS} report parts; the rest skipped")
            break
        try:
            for document in _documents(kind, payload):
                found.reports.append(parse_document(document))
        except ReportError as exc:
            found.problems.append(f"{_name(part) or part.get_content_type()}: {exc}")
    return found


def _payload(part: Message) -> bytes | None:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: not a report we can read
        return None
    return data if isinstance(data, bytes) else None


def _name(part: Message) -> str:
    try:
        return (part.get_filename() or "").lower()
    except Exception:
        return ""


def _container(part: Message, payload: bytes) -> str | None:
    """ "gzip", "zip" or "plain" for a part that holds a report, else None."""
    ctype = part.get_content_type().lower()
    name = _name(part)
    if ctype in _GZIP_TYPES or name.endswith((".gz", ".gzip")) or payload[:2] == b"\x1f\x8b":
        return "gzip"
    if ctype in _ZIP_TYPES or name.endswith(".zip") or payload[:4] == b"PK\x03\x04":
        return "zip"
    if ctype in _PLAIN_TYPES or name.endswith((".xml", ".json")):
        return "plain"
    return None


def _documents(kind: str, payload: bytes) -> list[bytes]:
    if kind == "gzip":
        return [_gunzip(payload)]
    if kind == "zip":
        return _unzip(payload)
    if len(payload) > MAX_REPORT_BYTES:
        raise ReportError("report larger than the limit")
    return [payload]


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_REPORT_BYTES + 1)
    except zlib.error as exc:
        raise ReportError(f"bad gzip data: {exc}") from None
    if len(out) > MAX_REPORT_BYTES:
        raise ReportError("report larger than the limit once inflated")
    return out


def _unzip(data: bytes) -> list[bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()][:MAX_PARTS]
        out = []
        for member in members:
            with archive.open(member) as handle:  # reads at most the limit, whatever it claims
                body = handle.read(MAX_REPORT_BYTES + 1)
            if len(body) > MAX_REPORT_BYTES:
                raise ReportError("report larger than the limit once inflated")
            out.append(body)
        return out
    except (zipfile.BadZipFile, zlib.error, OSError, NotImplementedError, RuntimeError) as exc:
        raise ReportError(f"bad zip data: {exc}") from None


def parse_document(document: bytes) -> DmarcAggregate | TlsAggregate:
    """One inflated report: DMARC XML or TLS-RPT JSON, told apart by their first byte."""
    head = document.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return parse_dmarc(document)
    if head == b"{":
        return parse_tlsrpt(document)
    raise ReportError("neither XML nor JSON")


# --- DMARC (RFC 7489 appendix C) ------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]  # the DMARCbis namespace, or Microsoft's prefixes, dropped


def _child(element, name: str):
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element, name: str) -> list:
    return [child for child in element if _local(child.tag) == name]


def _text(element, *path: str, default: str = "") -> str:
    for name in path:
        if element is None:
            return default
        element = _child(element, name)
    if element is None or element.text is None:
        return default
    return element.text.strip()


def _timestamp(text: str, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(text), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise ReportError(f"bad {what} {text[:40]!r}") from None


def _int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ReportError(f"bad {what} {text[:40]!r}") from None
    if value < 0 or value > 2**31 - 1:
        raise ReportError(f"{what} out of range: {value}")
    return value


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ReportError(f"bad source_ip {text[:60]!r}") from None


def _short(text: str, limit: int = 253) -> str:
    return text[:limit]


def parse_dmarc(document: bytes) -> DmarcAggregate:
    try:
        root = SafeET.fromstring(document)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise ReportError(f"bad XML: {exc}") from None
    if _local(root.tag) != "feedback":
        raise ReportError(f"XML root is {_local(root.tag)!r}, not feedback")
    meta = _child(root, "report_metadata")
    published = _child(root, "policy_published")
    if meta is None or published is None:
        raise ReportError("report_metadata or policy_published missing")
    records = _children(root, "record")
    if len(records) > MAX_RECORDS:
        raise ReportError(f"more than {MAX_RECORDS} records")
    pct = _text(published, "pct")
    report = DmarcAggregate(
        org_name=_short(_text(meta, "org_name"), 255),
        org_email=_short(_text(meta, "email"), 320),
        report_id=_short(_text(meta, "report_id"), 255),
        begin=_timestamp(_text(meta, "date_range", "begin"), "begin"),
        end=_timestamp(_text(meta, "date_range", "end"), "end"),
        policy_domain=_short(_text(published, "domain").lower()),
        policy=_short(_text(published, "p").lower(), 16),
        subdomain_policy=_short(_text(published, "sp").lower(), 16),
        pct=_int(pct, "pct") if pct else None,
        adkim=_text(published, "adkim").lower()[:1],
        aspf=_text(published, "aspf").lower()[:1],
        rows=tuple(_dmarc_row(record) for record in records),
    )
    if not report.org_name or not report.report_id or not report.policy_domain:
        raise ReportError("org_name, report_id or policy_published/domain missing")
    return report


def _dmarc_row(record) -> DmarcRow:
    row = _child(record, "row")
    if row is None:
        raise ReportError("record without row")
    evaluated = _child(row, "policy_evaluated")
    identifiers = _child(record, "identifiers")
    auth = _child(record, "auth_results")
    dkim = tuple(
        (
            _short(_text(d, "domain").lower()),
            _short(_text(d, "selector"), 63),
            _short(_text(d, "result").lower(), 16),
        )
        for d in (_children(auth, "dkim") if auth is not None else [])
    )
    spf = tuple(
        (
            _short(_text(s, "domain").lower()),
            _short(_text(s, "scope").lower() or "mfrom", 8),
            _short(_text(s, "result").lower(), 16),
        )
        for s in (_children(auth, "spf") if auth is not None else [])
    )
    return DmarcRow(
        source_ip=_ip(_text(row, "source_ip")),
        count=_int(_text(row, "count"), "count"),
        disposition=_short(_text(evaluated, "disposition").lower(), 16),
        dkim=_short(_text(evaluated, "dkim").lower(), 8),
        spf=_short(_text(evaluated, "spf").lower(), 8),
        header_from=_short(_text(identifiers, "header_from").lower()),
        envelope_from=_short(_text(identifiers, "envelope_from").lower()),
        dkim_results=dkim,
        spf_results=spf,
    )


# --- SMTP TLS reporting (RFC 8460 4.4) -------------------------------------------------------


def _rfc3339(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ReportError(f"{what} missing")
    try:
        when = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise ReportError(f"bad {what} {value[:40]!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ReportError(f"bad {what}: {value!r}"[:80])
    return value


def _str(value: object, limit: int = 253) -> str:
    return value[:limit] if isinstance(value, str) else ""


def parse_tlsrpt(document: bytes) -> TlsAggregate:
    try:
        data = json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise ReportError(f"bad JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError("JSON report is not an object")
    dates = data.get("date-range")
    policies = data.get("policies")
    if not isinstance(dates, dict) or not isinstance(policies, list):
        raise ReportError("date-range or policies missing")
    if len(policies) > MAX_RECORDS:
        raise ReportError(f"more than {MAX_RECORDS} policies")
    report = TlsAggregate(
        org_name=_str(data.get("organization-name"), 255),
        contact=_str(data.get("contact-info"), 320),
        report_id=_str(data.get("report-id"), 255),
        begin=_rfc3339(dates.get("start-datetime"), "start-datetime"),
        end=_rfc3339(dates.get("end-datetime"), "end-datetime"),
        policies=tuple(_tls_policy(p) for p in policies),
    )
    if not report.org_name or not report.report_id:
        raise ReportError("organization-name or report-id missing")
    return report


def _tls_policy(item: object) -> TlsPolicy:
    if not isinstance(item, dict):
        raise ReportError("a policy is not an object")
    policy = item.get("policy") if isinstance(item.get("policy"), dict) else {}
    summary = item.get("summary")
    if not isinstance(summary, dict):
        raise ReportError("policy without summary")
    mx = policy.get("mx-host")
    hosts = mx if isinstance(mx, list) else [mx] if isinstance(mx, str) else []
    details = item.get("failure-details")
    failures = []
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        failures.append(
            {
                "result_type": _str(detail.get("result-type"), 64),
                "sending_mta_ip": _str(detail.get("sending-mta-ip"), 64),
                "receiving_mx_hostname": _str(detail.get("receiving-mx-hostname")),
                "receiving_ip": _str(detail.get("receiving-ip"), 64),
                "failed_session_count": _count(
                    detail.get("failed-session-count", 0), "failed-session-count"
                ),
                "additional_information": _str(detail.get("additional-information"), 512),
                "failure_reason_code": _str(detail.get("failure-reason-code"), 255),
            }
        )
        if len(failures) >= 1000:
            break
    return TlsPolicy(
        policy_type=_str(policy.get("policy-type"), 16),
        policy_domain=_str(policy.get("policy-domain")).lower(),
        mx_hosts=tuple(_str(h) for h in hosts[:50] if isinstance(h, str)),
        successful=_count(
            summary.get("total-successful-session-count", 0), "total-successful-session-count"
        ),
        failed=_count(summary.get("total-failure-session-count", 0), "total-failure-session-count"),
        failure_details=tuple(failures),
    )


__all__ = [
    "DmarcAggregate",
    "DmarcRow",
    "Extracted",
    "ReportError",
    "TlsAggregate",
    "TlsPolicy",
    "from_message",
    "parse_document",
    "parse_dmarc",
    "parse_tlsrpt",
]

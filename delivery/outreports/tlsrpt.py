"""SMTP TLS reporting, the sending side (RFC 8460): count each outbound session's TLS outcome
per recipient domain, policy and day, and build the daily JSON report for the domain's rua.

Counting is in memory and cheap (a dict under a lock): the session calls
`PolicyKey.session(...)` where its TLS outcome is known (delivery/client.py), a refused MX
host or a failed policy fetch is counted where it is decided (delivery/tlspolicy.py,
delivery/mtasts.py). `flush()` adds the counts to the database (TlsSessionCount rows, with
F() increments): the sweeper calls it every pass, a worker on its way out, and the report
job before it reads.

The policy domain is the recipient domain for all three policy types: for DANE the policy
is the MX host's TLSA records (policy-type "tlsa", mx-host the MX host), reported to the
recipient domain's `_smtp._tls` record like MTA-STS. An MX host's own `_smtp._tls.<mx>`
record (which mox also sends DANE results to, reading the TLSA base domain as a policy
domain of its own) is not used.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import ssl
import threading
from collections import Counter
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

# RFC 8460 4.3 result types.
STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
CERTIFICATE_EXPIRED = "certificate-expired"
CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
VALIDATION_FAILURE = "validation-failure"
TLSA_INVALID = "tlsa-invalid"
DNSSEC_INVALID = "dnssec-invalid"
DANE_REQUIRED = "dane-required"
STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
STS_POLICY_INVALID = "sts-policy-invalid"
STS_WEBPKI_INVALID = "sts-webpki-invalid"
RESULT_TYPES = (
    STARTTLS_NOT_SUPPORTED,
    CERTIFICATE_HOST_MISMATCH,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_NOT_TRUSTED,
    VALIDATION_FAILURE,
    TLSA_INVALID,
    DNSSEC_INVALID,
    DANE_REQUIRED,
    STS_POLICY_FETCH_ERROR,
    STS_POLICY_INVALID,
    STS_WEBPKI_INVALID,
)

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) behind ssl.SSLCertVerificationError.verify_code.
_EXPIRED = {10}  # CERT_HAS_EXPIRED
_HOST_MISMATCH = {62}  # HOSTNAME_MISMATCH
_NOT_TRUSTED = {2, 18, 19, 20, 21, 24, 27, 28}  # issuer unknown, self-signed, untrusted...


@dataclass(frozen=True)
class PolicyKey:
    """The policy a session ran under, as the report names it (RFC 8460 4.4 "policy")."""

    domain: str  # the policy domain: the recipient domain
    policy_type: str  # "tlsa" | "sts" | "no-policy-found"
    strings: tuple[str, ...] = ()  # policy-string
    mx: tuple[str, ...] = ()  # mx-host

    def session(
        self,
        result_type: str = "",
        *,
        mx_host: str = "",
        receiving_ip: str = "",
        sending_ip: str = "",
        reason: str = "",
    ) -> None:
        """Count one session: a success ("") or a failure of `result_type`."""
        if result_type:
            key = _Key(self, result_type, mx_host.lower().rstrip("."), receiving_ip, sending_ip)
        else:
            key = _Key(self, "", "", "", "")
        with _lock:
            _counts[(_today(), key)] += 1
            if reason:
                _reasons[(_today(), key)] = reason[:255]

    @property
    def digest(self) -> str:
        data = json.dumps([self.strings, self.mx]).encode()
        return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Key:
    policy: PolicyKey
    result_type: str
    mx_host: str
    receiving_ip: str
    sending_ip: str


_lock = threading.Lock()
_counts: Counter[tuple[datetime.date, _Key]] = Counter()
_reasons: dict[tuple[datetime.date, _Key], str] = {}


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def enabled() -> bool:
    return settings.MAILHOST_TLS_REPORTS


def no_policy(domain: str) -> PolicyKey | None:
    return PolicyKey(domain, "no-policy-found") if enabled() else None


def sts(domain: str, policy) -> PolicyKey | None:  # noqa: ANN001 - delivery.mtasts.Policy
    """The key of an MTA-STS policy: its lines as policy-string (RFC 8460 4.4)."""
    if not enabled():
        return None
    lines = [
        "version: STSv1",
        f"mode: {policy.mode}",
        *(f"mx: {pattern}" for pattern in policy.mx),
        f"max_age: {policy.max_age}",
    ]
    return PolicyKey(domain, "sts", tuple(lines), tuple(policy.mx))


def tlsa(domain: str, mx_host: str, records) -> PolicyKey | None:  # noqa: ANN001
    """The key of one MX host's TLSA records, in presentation form (RFC 8460 4.4)."""
    if not enabled():
        return None
    strings = tuple(f"{r.usage} {r.selector} {r.mtype} {r.data.hex()}" for r in records)
    return PolicyKey(domain, "tlsa", strings, (mx_host.lower().rstrip("."),))


def handshake_failure(exc: BaseException) -> str:
    """The RFC 8460 result type of a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in _EXPIRED:
            return CERTIFICATE_EXPIRED
        if code in _HOST_MISMATCH:
            return CERTIFICATE_HOST_MISMATCH
        if code in _NOT_TRUSTED:
            return CERTIFICATE_NOT_TRUSTED
    return VALIDATION_FAILURE


def take() -> list[tuple[datetime.date, _Key, int, str]]:
    """The counts so far, removed from memory."""
    with _lock:
        taken = [(day, key, n, _reasons.get((day, key), "")) for (day, key), n in _counts.items()]
        _counts.clear()
        _reasons.clear()
    return taken


def give_back(taken: list[tuple[datetime.date, _Key, int, str]]) -> None:
    with _lock:
        for day, key, n, reason in taken:
            _counts[(day, key)] += n
            if reason:
                _reasons.setdefault((day, key), reason)


def flush() -> int:
    """Add the counts in memory to the database; returns how many rows it touched. On a
    database error the counts stay in memory for the next flush."""
    taken = take()
    if not taken:
        return 0
    from delivery.outreports import services

    try:
        services.tls_sessions_add(
            [
                services.TlsCount(
                    day=day,
                    policy_domain=key.policy.domain,
                    policy_type=key.policy.policy_type,
                    policy_digest=key.policy.digest,
                    policy_strings=list(key.policy.strings),
                    mx_patterns=list(key.policy.mx),
                    result_type=key.result_type,
                    mx_host=key.mx_host,
                    receiving_ip=key.receiving_ip,
                    sending_ip=key.sending_ip,
                    reason=reason,
                    count=n,
                )
                for day, key, n, reason in taken
            ]
        )
    except Exception:
        logger.exception("tls report counts could not be stored; kept for the next flush")
        give_back(taken)
        return 0
    return len(taken)


def forget() -> None:
    """Drop the counts in memory (tests)."""
    take()


# --- The report (RFC 8460 4.4) -----------------------------------------------------------------


def _rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    *,
    day: datetime.date,
    domain: str,
    rows,  # noqa: ANN001 - TlsSessionCount rows of this day and domain
    org_name: str,
    contact: str,
    report_id: str,
) -> dict:
    """The report as a JSON-ready dict: one policy entry per policy the sessions ran under,
    with the totals and a failure-details entry per (result, MX host, addresses)."""
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    policies: dict[tuple[str, str], dict] = {}
    for row in sorted(rows, key=lambda r: (r.policy_type, r.policy_digest, r.result_type)):
        entry = policies.get((row.policy_type, row.policy_digest))
        if entry is None:
            policy = {"policy-type": row.policy_type, "policy-domain": domain}
            if row.policy_strings:
                policy["policy-string"] = list(row.policy_strings)
            if row.mx_patterns:
                policy["mx-host"] = list(row.mx_patterns)
            entry = {
                "policy": policy,
                "summary": {"total-successful-session-count": 0, "total-failure-session-count": 0},
            }
            policies[(row.policy_type, row.policy_digest)] = entry
        if not row.result_type:
            entry["summary"]["total-successful-session-count"] += row.count
            continue
        entry["summary"]["total-failure-session-count"] += row.count
        detail = {"result-type": row.result_type}
        if row.sending_ip:
            detail["sending-mta-ip"] = row.sending_ip
        if row.mx_host:
            detail["receiving-mx-hostname"] = row.mx_host
        if row.receiving_ip:
            detail["receiving-ip"] = row.receiving_ip
        detail["failed-session-count"] = row.count
        if row.reason:
            detail["failure-reason-code"] = row.reason
        entry.setdefault("failure-details", []).append(detail)
    return {
        "organization-name": org_name,
        "date-range": {
            "start-datetime": _rfc3339(start),
            "end-datetime": _rfc3339(
                start + datetime.timedelta(days=1) - datetime.timedelta(seconds=1)
            ),
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": list(policies.values()),
    }


# --- The reporting policy: _smtp._tls.<domain> (RFC 8460 3) ------------------------------------


def parse_record(records: list[bytes]) -> list[str] | None:
    """The rua URIs of the one TXT record that starts with v=TLSRPTv1, or None (none, or
    more than one: RFC 8460 3, "MUST NOT" send then)."""
    found = [r for r in records if r.startswith(b"v=TLSRPTv1")]
    if len(found) != 1 or not found[0][len(b"v=TLSRPTv1") :].lstrip(b" \t").startswith(b";"):
        return None
    fields: dict[str, str] = {}
    for part in found[0].decode("utf-8", "replace").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    if "rua" not in fields:
        return None
    uris = [u.strip() for u in fields["rua"].split(",") if u.strip()]
    return [u for u in uris if u.lower().startswith(("mailto:", "https:"))] or None

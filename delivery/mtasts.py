"""MTA-STS (RFC 8461), the sending side: which MX hosts of a domain may receive its mail, and
that they must show a certificate valid for their name.

`policy(domain)` gives the domain's policy or None. The TXT record `_mta-sts.<domain>` says a
policy exists and its id (RFC 8461 3.1); the policy itself comes over HTTPS from
`https://mta-sts.<domain>/.well-known/mta-sts.txt` (3.3), verified against the system's CAs
(or MAILHOST_OUTBOUND_CA_FILE), with no redirect followed. Policies are kept in the database
(MtaStsPolicy) until their max_age runs out, so a restart or a failed fetch does not lose one
(5.1: an attacker who blocks the fetch must not turn enforce into nothing).
"""

from __future__ import annotations

import datetime
import http.client
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from delivery import dns

logger = logging.getLogger(__name__)

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 3.3: "a reasonable maximum size (e.g. 64 KB)"
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: at most one year
POLICY_ID = re.compile(r"[A-Za-z0-9]{1,32}")
MODES = ("enforce", "testing", "none")
# RFC 8460 4.3.2.3: why a policy could not be had (a PolicyError's result_type).
FETCH_ERROR = "sts-policy-fetch-error"
WEBPKI_INVALID = "sts-webpki-invalid"


@dataclass(frozen=True)
class Policy:
    domain: str
    policy_id: str
    mode: str  # enforce | testing | none
    mx: tuple[str, ...]  # patterns: "mail.example.com" or "*.example.net"
    max_age: int

    def allows(self, mx_host: str) -> bool:
        """RFC 8461 4.1: the MX host name matches one of the `mx` patterns; a wildcard
        stands for exactly one leftmost label."""
        name = mx_host.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                head, _, rest = name.partition(".")
                if head and rest == pattern[2:]:
                    return True
            elif name == pattern:
                return True
        return False


class PolicyError(Exception):
    """No policy could be had; `result_type` says why as RFC 8460 4.3.2.3 reports it."""

    def __init__(self, text: str, result_type: str = "sts-policy-invalid") -> None:
        super().__init__(text)
        self.result_type = result_type


def parse_txt(records: list[bytes]) -> str | None:
    """The policy id from the `_mta-sts` TXT records (RFC 8461 3.1), or None when there is
    no valid record, or more than one (which counts as none)."""
    found = [r for r in records if r.startswith(b"v=STSv1")]
    if len(found) != 1:
        return None
    fields = {}
    for part in found[0].decode("ascii", "replace").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    policy_id = fields.get("id", "")
    return policy_id if POLICY_ID.fullmatch(policy_id) else None


def parse_policy(domain: str, policy_id: str, text: str) -> Policy:
    """RFC 8461 3.2: `key: value` lines; version, mode, max_age and (unless mode none) at
    least one mx are required; unknown keys are ignored."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise PolicyError("version is not STSv1")
    mode = (fields.get("mode") or [""])[0]
    if mode not in MODES:
        raise PolicyError(f"mode {mode!r} unknown")
    try:
        max_age = int((fields.get("max_age") or [""])[0])
    except ValueError:
        raise PolicyError("max_age missing or not a number") from None
    if not 0 <= max_age <= MAX_AGE_LIMIT:
        raise PolicyError(f"max_age {max_age} out of range")
    mx = tuple(p.lower().rstrip(".") for p in fields.get("mx", []) if p)
    if mode != "none" and not mx:
        raise PolicyError("no mx")
    return Policy(domain, policy_id, mode, mx, max_age)


class _ResolvedHTTPS(http.client.HTTPSConnection):
    """HTTPS to one address we resolved ourselves (MAILHOST_DNS_SERVERS), certificate and
    SNI for the host name."""

    def __init__(self, host: str, address: str, port: int, *, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=settings.MAILHOST_MTA_STS_TIMEOUT, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def verifying_context() -> ssl.SSLContext:
    """PKIX verification (RFC 8461 4.2) against the system's CAs or MAILHOST_OUTBOUND_CA_FILE."""
    context = ssl.create_default_context(cafile=settings.MAILHOST_OUTBOUND_CA_FILE)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def fetch(domain: str, policy_id: str) -> Policy:
    """GET the policy over HTTPS (RFC 8461 3.3); raises PolicyError."""
    host = f"mta-sts.{domain}"
    try:
        addresses = dns.get_resolver().addresses(host)
    except dns.DNSError as exc:
        raise PolicyError(f"{host}: {exc.text}", FETCH_ERROR) from None
    if not addresses:
        raise PolicyError(f"{host} has no address", FETCH_ERROR)
    errors = []
    result_type = FETCH_ERROR
    for address in addresses:
        connection = _ResolvedHTTPS(
            host, address, settings.MAILHOST_MTA_STS_PORT, context=verifying_context()
        )
        try:
            connection.request("GET", "/.well-known/mta-sts.txt", headers={"Host": host})
            response = connection.getresponse()
            # No redirects are followed (3.3): anything but 200 is no policy.
            if response.status != 200:
                raise PolicyError(f"{host} answered HTTP {response.status}", FETCH_ERROR)
            kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if kind != "text/plain":
                raise PolicyError(f"{host} sent {kind or 'no content type'}, not text/plain")
            body = response.read(MAX_POLICY_BYTES + 1)
            if len(body) > MAX_POLICY_BYTES:
                raise PolicyError(f"{host}: policy larger than {MAX_POLICY_BYTES} bytes")
            return parse_policy(domain, policy_id, body.decode("utf-8", "replace"))
        except PolicyError:
            raise
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            errors.append(f"[{address}] {exc}")
            if isinstance(exc, ssl.SSLCertVerificationError):
                result_type = WEBPKI_INVALID
        finally:
            connection.close()
    raise PolicyError(f"{host}: " + "; ".join(errors), result_type)


# What policy() answered per domain, for MEMO_SECONDS in this process: delivery asks for every
# message, and most domains publish nothing (a database read and a TXT lookup each time).
MEMO_SECONDS = 60
_memo: dict[tuple[int, str], tuple[float, Policy | None]] = {}


def policy(domain: str, *, now: datetime.datetime | None = None) -> Policy | None:
    """The domain's MTA-STS policy in force, or None (RFC 8461 5.1): a cached one whose id the
    TXT record still names is used as it is; a new id is fetched; when the record or the fetch
    fails, an unexpired cached policy still applies. Mode `none` comes back as None. The
    answer is remembered for MEMO_SECONDS (a policy's TXT record has a TTL of its own)."""
    if not settings.MAILHOST_MTA_STS:
        return None
    domain = domain.lower().rstrip(".")
    key = (dns.generation, domain)
    remembered = _memo.get(key)
    if now is None and remembered is not None and remembered[0] > time.monotonic():
        return remembered[1]
    found, settled = _policy(domain, now=now or timezone.now())
    if settled:  # failed lookups and fetches are tried again next time
        if len(_memo) > 10_000:
            _memo.clear()
        _memo[key] = (time.monotonic() + MEMO_SECONDS, found)
    return found


def _policy(domain: str, *, now: datetime.datetime) -> tuple[Policy | None, bool]:
    """(the policy in force, whether that answer is settled enough to remember)."""
    from delivery import selectors, services

    cached = selectors.mta_sts_policy(domain, now=now)
    settled = True
    try:
        policy_id = parse_txt(dns.get_resolver().txt(f"_mta-sts.{domain}"))
    except dns.NoSuchDomain:  # the usual case: no policy published
        policy_id = None
    except dns.DNSError as exc:
        logger.info("mta-sts txt lookup failed domain=%s error=%s", domain, exc.text)
        policy_id, settled = None, False
    if policy_id is None or (cached is not None and cached.policy_id == policy_id):
        return _in_force(cached), settled
    try:
        fetched = fetch(domain, policy_id)
    except PolicyError as exc:
        logger.warning('mta-sts fetch failed domain=%s error="%s"', domain, exc)
        _fetch_failure_count(domain, cached, exc)
        return _in_force(cached), False
    services.mta_sts_policy_store(policy=fetched, fetched_at=now)
    logger.info(
        "mta-sts policy domain=%s id=%s mode=%s mx=%s max_age=%s",
        domain,
        fetched.policy_id,
        fetched.mode,
        ",".join(fetched.mx),
        fetched.max_age,
    )
    return _in_force(fetched), True


def _in_force(found: Policy | None) -> Policy | None:
    return None if found is None or found.mode == "none" else found


def _fetch_failure_count(domain: str, cached: Policy | None, exc: PolicyError) -> None:
    """A failed fetch is a failure of the domain's TLS report (RFC 8460 4.3.2.3), under the
    cached policy still in force, else under no policy found."""
    from delivery.outreports import tlsrpt

    in_force = _in_force(cached)
    key = tlsrpt.sts(domain, in_force) if in_force is not None else tlsrpt.no_policy(domain)
    if key is not None:
        key.session(exc.result_type, reason=str(exc))

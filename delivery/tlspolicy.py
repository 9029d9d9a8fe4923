"""Which protection each MX host of a destination domain must give (RFC 7672 DANE, RFC 8461
MTA-STS, RFC 8689 REQUIRETLS and TLS-Required), as delivery/client.py's HostSecurity.

- DANE first: when the domain's MX RRset and the host's TLSA records are DNSSEC-validated
  (MAILHOST_DANE), the host must match them; DANE takes precedence over MTA-STS for that
  host (RFC 8461 2).
- MTA-STS: with a policy in force, a host the policy's `mx` does not name is not used in
  enforce mode, and every other host must show a certificate valid for its name; in testing
  mode failures are logged and mail still goes by opportunistic TLS (RFC 8461 5).
- Else opportunistic TLS.
- A message with `TLS-Required: No` (RFC 8689 5) and no REQUIRETLS ignores DANE and MTA-STS
  failures: it goes by opportunistic TLS, its sender having said confidentiality matters
  less than delivery.

Each HostSecurity carries the policy its session is counted under for the recipient
domain's TLS report (RFC 8460, delivery/outreports/tlsrpt.py); a host refused here is
counted here. Mail with `TLS-Required: No` is not counted (our own TLS reports carry it:
RFC 8460 5.3 asks that their sessions stay out of the next report).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.conf import settings

from delivery import dane, dns, mtasts
from delivery.client import OPPORTUNISTIC, HostSecurity
from delivery.dns import MXHost
from delivery.outreports import tlsrpt

logger = logging.getLogger(__name__)

# RFC 8689 5, the field in any case: searched for in the lower-cased header with a newline
# first, where the literal "\ntls-required:" is found by a plain search; rb"(?im)^TLS-Req..."
# in the header itself has no literal to look for and was tried at every octet of it, on
# every delivery (4.5 us -> 0.8 us for a signed 2 KB submission's header).
_TLS_REQUIRED_NO = re.compile(rb"(?m)\ntls-required:[ \t]*no[ \t]*\r?$")


def tls_required_no(raw: bytes) -> bool:
    """The message's header says `TLS-Required: No` (RFC 8689 5)."""
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[: end + 2]
    return bool(_TLS_REQUIRED_NO.search(b"\n" + head.lower()))


def destination_security(
    domain: str, *, port: int, raw: bytes, require_tls: bool
) -> Callable[[MXHost], HostSecurity]:
    """The per-host rule for mail to `domain` (see the module docstring)."""
    if not require_tls and tls_required_no(raw):
        return lambda host: OPPORTUNISTIC
    dane_applies = settings.MAILHOST_DANE and dane.mx_secure(domain)
    policy = mtasts.policy(domain)
    no_policy = HostSecurity(tlsrpt=tlsrpt.no_policy(domain))
    sts_key = tlsrpt.sts(domain, policy) if policy is not None else None

    def security(host: MXHost) -> HostSecurity:
        if dane_applies:
            try:
                found = dane.tlsa_for(host.name, port)
            except dns.DNSError as exc:
                reason = f"TLSA lookup failed: {exc.text}"
                _refused(tlsrpt.tlsa(domain, host.name, ()), tlsrpt.DNSSEC_INVALID, host, reason)
                return HostSecurity("refused", reason=reason)
            if found is not None:
                key = tlsrpt.tlsa(domain, host.name, found.records)
                return HostSecurity("dane", enforce=True, dane=found, tlsrpt=key)
        if policy is None:
            return no_policy
        enforce = policy.mode == "enforce" or require_tls  # RFC 8689 4.2.1: testing counts
        if not policy.allows(host.name):
            reason = f"not an MX host of {domain}'s MTA-STS policy"
            _refused(sts_key, tlsrpt.VALIDATION_FAILURE, host, reason)
            if enforce:
                return HostSecurity("refused", reason=reason)
            logger.info("mta-sts testing host=%s not in the policy of domain=%s", host.name, domain)
            return OPPORTUNISTIC
        return HostSecurity("mta-sts", enforce=enforce, tlsrpt=sts_key)

    return security


def _refused(key: tlsrpt.PolicyKey | None, result_type: str, host: MXHost, reason: str) -> None:
    """Count a host the policy rules out as a failed session of the policy's report."""
    if key is not None:
        key.session(result_type, mx_host=host.name, reason=reason)

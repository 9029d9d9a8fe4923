"""DANE for SMTP (RFC 7672, RFC 7671): TLSA records, validated by DNSSEC, say which
certificate an MX host must show.

`tlsa_for(mx_host, port)` gives the usable records of a host whose MX and TLSA lookups were
both authenticated (the AD bit from MAILHOST_DNS_SERVERS), or None when DANE does not apply.
`verify(records, chain, name)` checks a peer's chain (leaf first, DER) against them:
- DANE-EE (usage 3): the leaf's certificate or public key matches; names and dates are not
  checked (RFC 7672 3.1.1);
- DANE-TA (usage 2): a certificate of the chain matches, the chain from the leaf up to it is
  signed link by link, and the leaf names the MX host (RFC 7672 3.1.2).
Selectors 0 (whole certificate) and 1 (SubjectPublicKeyInfo); matching 0 (exact), 1
(SHA-256), 2 (SHA-512). PKIX usages 0 and 1 are not usable for SMTP (RFC 7672 3.1.3).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from delivery import dns

logger = logging.getLogger(__name__)

DANE_TA, DANE_EE = 2, 3


@dataclass(frozen=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        return (
            self.usage in (DANE_TA, DANE_EE) and self.selector in (0, 1) and self.mtype in (0, 1, 2)
        )


@dataclass(frozen=True)
class DaneHost:
    """DANE applies to this host: TLS is mandatory; `records` are the usable TLSA records
    (none usable: TLS without authentication, RFC 7672 2.2)."""

    records: tuple[Tlsa, ...]


def mx_secure(domain: str) -> bool:
    """Was the domain's MX RRset validated (RFC 7672 2.2.1)? DANE applies only then."""
    lookup = getattr(dns.get_resolver(), "secure_rdatas", None)
    if lookup is None:
        return False
    try:
        records, authenticated = lookup(domain, "MX")
    except dns.DNSError:
        return False
    return authenticated and bool(records)


def tlsa_for(mx_host: str, port: int) -> DaneHost | None:
    """The host's TLSA records at _<port>._tcp.<host> when they exist and are authenticated.
    A lookup that fails raises DNSTemporaryError: the host cannot be used now (RFC 7672
    2.2: a failed TLSA lookup must not be mistaken for no records)."""
    lookup = getattr(dns.get_resolver(), "secure_rdatas", None)
    if lookup is None:
        return None
    try:
        rdatas, authenticated = lookup(f"_{port}._tcp.{mx_host}", "TLSA")
    except dns.NoSuchDomain:
        return None
    if not authenticated or not rdatas:
        return None
    records = tuple(Tlsa(r.usage, r.selector, r.mtype, bytes(r.cert)) for r in rdatas)
    return DaneHost(tuple(r for r in records if r.usable))


def _selected(der: bytes, selector: int) -> bytes:
    if selector == 0:
        return der
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_der_x509_certificate(der).public_key()
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _matches(record: Tlsa, der: bytes) -> bool:
    data = _selected(der, record.selector)
    if record.mtype == 1:
        data = hashlib.sha256(data).digest()
    elif record.mtype == 2:
        data = hashlib.sha512(data).digest()
    return data == record.data


def verify(records: tuple[Tlsa, ...], chain: list[bytes], name: str) -> str | None:
    """None when the chain satisfies one of the records, else why not (for the log/reply)."""
    if not chain:
        return "the peer sent no certificate"
    for record in records:
        if record.usage == DANE_EE and _matches(record, chain[0]):
            return None
    for record in records:
        if record.usage != DANE_TA:
            continue
        for index, der in enumerate(chain):
            if _matches(record, der) and _signed_up_to(chain, index) and _names(chain[0], name):
                return None
    return "no TLSA record matches the certificate chain"


def _signed_up_to(chain: list[bytes], top: int) -> bool:
    """Each certificate from the leaf up to chain[top] is signed by the next one."""
    from cryptography import x509

    certs = [x509.load_der_x509_certificate(der) for der in chain[: top + 1]]
    try:
        for child, parent in zip(certs, certs[1:]):
            child.verify_directly_issued_by(parent)
    except Exception:  # InvalidSignature, or a key type it cannot check: no link
        return False
    return True


def _names(der: bytes, name: str) -> bool:
    """The leaf names the host (a SAN DNS name, one-label wildcard allowed)."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in alt.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    name = name.lower().rstrip(".")
    for candidate in names:
        if candidate == name:
            return True
        if candidate.startswith("*.") and name.partition(".")[2] == candidate[2:]:
            return True
    return False

"""DKIM signing (RFC 6376) of mail that leaves from a hosted domain: RSA relaxed/relaxed by
delivery.dkimrelaxed for the common message, dkimpy for the rest (Ed25519, bare LFs, header
sections dkimpy reads its own way).

The signing domain is the From header's domain when we host it (that is what DMARC aligns
on), else the envelope sender's domain when we host that; mail from anyone else passes
through unsigned.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from django.db import connection

from delivery.dkimrelaxed import relaxed_rsa_sha256
from delivery.inbound import rsaverify
from mailboxes.addresses import domain_to_ascii
from mailboxes.exceptions import InvalidAddress
from mailboxes.models import DkimKey, Domain
from mailhost.expiring import ExpiringCache
from mailhost.plainsql import Columns

logger = logging.getLogger(__name__)

rsaverify.install()  # signing (and ARC sealing) by OpenSSL, not dkimpy's pure-Python RSA

# relaxed/relaxed survives the header re-folding and whitespace changes that relays commonly
# make (RFC 6376 3.4.2, 3.4.4).
CANONICALIZATION = (b"relaxed", b"relaxed")


def _domain_of(address: str) -> str | None:
    _, sep, domain = address.strip().strip("<>").rpartition("@")
    if not sep or not domain:
        return None
    try:
        return domain_to_ascii(domain)
    except InvalidAddress:
        return None


def _from_header_domain(raw: bytes) -> str | None:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[: end + 2]
    try:
        headers = BytesHeaderParser().parsebytes(head)
        values = headers.get_all("From") or []
        addresses = getaddresses([str(v) for v in values])
    except Exception:  # a header the parser cannot read is not ours to sign
        return None
    for _, address in addresses:
        domain = _domain_of(address) if address else None
        if domain:
            return domain
    return None


def signing_key(
    raw: bytes, *, mail_from: str, from_addresses: Sequence[str] | None = None
) -> DkimKey | None:
    """The active key of the hosted, active domain that should sign this message, if any:
    the From domain's (the first From address with a domain; `from_addresses`: those the
    caller already read from the header), else the envelope sender's."""
    if from_addresses is None:
        from_domain = _from_header_domain(raw)
    else:
        from_domain = next(filter(None, map(_domain_of, from_addresses)), None)
    key = _keys.get(from_domain) if from_domain else None
    if key is None and mail_from:
        # The envelope sender's domain only when the From domain has no key: its IDNA
        # checks (domain_to_ascii) were made for every submission, most signed by From's.
        sender_domain = _domain_of(mail_from)
        key = _keys.get(sender_domain) if sender_domain else None
    return key


# How long a process signs with a key it read without reading it again: a key activated or
# retired, or a domain deactivated, elsewhere (the admin's process, another worker) is seen
# here within this many seconds; in this process at once (mailhost.expiring).
KEY_CACHE_SECONDS = 10.0
KEY_CACHE_NAMES = 1024


_KEY = Columns(DkimKey, "k")
_DOMAIN = Columns(Domain, "d")
_DOMAIN_OF_KEY = DkimKey._meta.get_field("domain")
_active_key_statement: str | None = None


def _active_key(name: str) -> DkimKey | None:
    """The active key of the active domain `name`, with its domain, in one plain statement
    (every submission asks: the ORM's query building cost more CPU than the query)."""
    global _active_key_statement
    if _active_key_statement is None:
        _active_key_statement = (
            f"SELECT {_KEY.sql}, {_DOMAIN.sql} FROM {_KEY.table}"
            f" INNER JOIN {_DOMAIN.table} ON d.id = k.domain_id"
            " WHERE d.name = %s AND d.active = %s AND k.state = %s"
            " ORDER BY k.created_at, k.id LIMIT 1"
        )
    with connection.cursor() as cursor:
        cursor.execute(_active_key_statement, [name, True, str(DkimKey.State.ACTIVE)])
        row = cursor.fetchone()
    if row is None:
        return None
    key = _KEY.instance(row)
    _DOMAIN_OF_KEY.set_cached_value(key, _DOMAIN.instance(row, len(_KEY)))
    return key


# Every submission signs, and reading the key (a join returning the PEM) cost 0.1 to 0.2 ms
# of CPU a message, about as much as the RSA signature itself. A domain name with no key is
# kept too (foreign From domains: a redirect keeps its From).
_keys = ExpiringCache(
    _active_key,
    seconds=KEY_CACHE_SECONDS,
    size=KEY_CACHE_NAMES,
    models=(DkimKey, Domain),
    name="dkim-keys",
)


def signing_domain(raw: bytes, *, mail_from: str) -> Domain | None:
    """The hosted, active domain with a key that should sign this message, if any."""
    key = signing_key(raw, mail_from=mail_from)
    return key.domain if key is not None else None


def dkim_sign(raw: bytes, *, mail_from: str, from_addresses: Sequence[str] | None = None) -> bytes:
    """`raw` with a DKIM-Signature header prepended, when a hosted domain should sign it
    (`from_addresses`: the From header's addresses when the caller has read them)."""
    key = signing_key(raw, mail_from=mail_from, from_addresses=from_addresses)
    if key is None:
        return raw
    domain = key.domain
    if raw[:1] in (b" ", b"\t"):
        # RFC 5322 2.2.3: a continuation line first continues no field, so the header
        # section cannot be read (dkimpy's parser fails with an IndexError on it).
        # Submission refuses such a message before signing (accept.header_start_check).
        logger.warning("DKIM: not signing for %s: the header starts folded", domain.name)
        return raw
    if key.algorithm == DkimKey.Algorithm.RSA and CANONICALIZATION == (b"relaxed", b"relaxed"):
        try:
            signature = relaxed_rsa_sha256(
                raw,
                selector=key.selector.encode("ascii"),
                domain=domain.name.encode("ascii"),
                pem=key.private_key,
            )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            signature = None  # a key `cryptography` cannot read: dkimpy says why below
        if signature is not None:
            return signature + raw
    try:
        # include_headers=None: dkimpy's default list (From, To, Subject, Date, Message-ID,
        # MIME headers, ...) of the fields present, with From and the other "frozen" fields
        # signed once more so that a second copy cannot be added later (RFC 6376 8.15).
        signature = dkim.sign(
            raw,
            key.selector.encode("ascii"),
            domain.name.encode("ascii"),
            _dkimpy_private_key(key),
            canonicalize=CANONICALIZATION,
            include_headers=None,
            signature_algorithm=SIGNATURE_ALGORITHMS[key.algorithm],
        )
    except dkim.DKIMException:
        logger.exception("DKIM signing failed for %s; sending unsigned", domain.name)
        return raw
    if b"\r\n" not in raw and b"\n" in raw:
        signature = signature.replace(b"\r\n", b"\n")
    return signature + raw


SIGNATURE_ALGORITHMS = {
    DkimKey.Algorithm.RSA: b"rsa-sha256",
    DkimKey.Algorithm.ED25519: b"ed25519-sha256",  # RFC 8463 3
}


def _dkimpy_private_key(key: DkimKey) -> bytes:
    """dkimpy takes RSA keys as PEM and Ed25519 keys as the base64 of the 32-octet seed."""
    if key.algorithm == DkimKey.Algorithm.RSA:
        return key.private_key.encode("ascii")
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    seed = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(seed)


def dkim_public_key_value(key: DkimKey | Domain | None) -> str:
    """The TXT record's value: `v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>`, or for
    Ed25519 `k=ed25519; p=<base64 of the 32-octet public key>` (RFC 8463 4.2). A Domain
    stands for its active key."""
    if isinstance(key, Domain):
        key = key.dkim_key
    if key is None or not key.private_key:
        return ""
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    if key.algorithm == DkimKey.Algorithm.ED25519:
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def dkim_txt_record(domain: Domain) -> str:
    """The zone-file lines that publish the domain's DKIM keys, every one not retired (also
    shown in the admin), values split into strings of at most 255 octets as zone files require."""
    from delivery.dnsrecords import dkim_records  # it imports this module

    return "\n".join(record.zone_line for record in dkim_records(domain))


def arc_seal(raw: bytes, *, domain_name: str) -> bytes:
    """`raw` with an ARC set (RFC 8617: ARC-Authentication-Results, ARC-Message-Signature,
    ARC-Seal) prepended by the hosted domain `domain_name`, which forwards it; unchanged when
    the domain has no active RSA key (dkimpy seals with RSA only) or sealing fails.

    The seal vouches for what this server found on arrival: its Authentication-Results
    field (authserv-id MAILHOST_HOSTNAME) when one is there, else "none".
    """
    from django.conf import settings

    key = (
        DkimKey.objects.select_related("domain")
        .filter(domain__name=domain_name, domain__active=True, state=DkimKey.State.ACTIVE)
        .first()
    )
    if key is None or key.algorithm != DkimKey.Algorithm.RSA:
        return raw
    srv_id = settings.MAILHOST_HOSTNAME.encode("ascii", "ignore")
    message = raw
    head = raw[: raw.find(b"\r\n\r\n") + 2] if b"\r\n\r\n" in raw else raw
    ours = b"authentication-results: " + srv_id.lower()
    if not any(line.lower().startswith(ours) for line in head.split(b"\r\n")):
        message = b"Authentication-Results: " + srv_id + b"; none\r\n" + raw
    try:
        fields = dkim.arc_sign(
            message,
            key.selector.encode("ascii"),
            domain_name.encode("ascii"),
            key.private_key.encode("ascii"),
            srv_id,
            include_headers=[b"from", b"to", b"cc", b"subject", b"date", b"message-id"],
        )
    except Exception:  # dkimpy raises many kinds; an unsealed copy is still delivered
        logger.exception("ARC sealing failed for %s; forwarding unsealed", domain_name)
        return raw
    return b"".join(fields) + raw

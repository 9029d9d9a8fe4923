"""Sender Rewriting Scheme: envelope senders of mail we forward.

A message forwarded (Sieve redirect, a remote alias target) to another domain keeps its
original envelope sender only at the cost of SPF failing at the destination: our address is
not in the sender domain's SPF record. So the forwarded copy leaves with a sender address on
our own domain that encodes the original one, and a bounce to it comes back here and goes on
to the original sender (Shevek's SRS, as postsrsd and libsrs2 write it):

    SRS0=HHHH=TT=orig-domain=orig-local@our-domain
    SRS1=HHHH=first-domain==HHHH=TT=orig-domain=orig-local@our-domain   (forwarded twice)

TT is the day (base32, modulo 1024) and HHHH a keyed hash of TT and the original address,
so nobody can make us relay to an address we never rewrote, nor replay one for longer than
MAILHOST_SRS_MAX_AGE days. The hash is base32 of HMAC-SHA256 over the lower-cased text, so a
relay that changes the case of the local part does not break it. The key is
MAILHOST_SRS_SECRET, or one derived from SECRET_KEY. Such a local part often passes 64 octets
(it holds a whole address); ours are accepted up to 255 (mailboxes.addresses.SRS_LOCAL_MAX),
as RFC 5321 4.5.3.1 asks and postsrsd's users rely on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from django.conf import settings

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SEP = "="
_SRS0 = re.compile(
    r"^srs0[=+-](?P<hash>[^=]{4})=(?P<tt>[^=]{2})=(?P<domain>[^=]+)=(?P<local>.+)$", re.I
)
_SRS1 = re.compile(r"^srs1[=+-](?P<hash>[^=]{4})=(?P<domain>[^=]+)=(?P<rest>[=+-].+)$", re.I)


class SRSError(ValueError):
    """The address is not one we wrote, its hash is wrong or it is too old."""


def _key() -> bytes:
    secret = settings.MAILHOST_SRS_SECRET
    if secret:
        return secret.encode("utf-8")
    return hmac.new(settings.SECRET_KEY.encode("utf-8"), b"mailhost-srs", hashlib.sha256).digest()


def _hash(*parts: str) -> str:
    text = "".join(parts).lower().encode("utf-8", "surrogateescape")
    digest = hmac.new(_key(), text, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:4]


def _today(now: float | None) -> int:
    return int((time.time() if now is None else now) // 86400)


def _timestamp(day: int) -> str:
    day %= 1024
    return _ALPHABET[day >> 5] + _ALPHABET[day & 31]


def _age_days(stamp: str, today: int) -> int:
    try:
        value = _ALPHABET.index(stamp[0].upper()) << 5 | _ALPHABET.index(stamp[1].upper())
    except ValueError:
        raise SRSError("bad SRS timestamp") from None
    return (today - value) % 1024


def is_srs(local_part: str) -> bool:
    return local_part[:5].lower() in {"srs0=", "srs0+", "srs0-", "srs1=", "srs1+", "srs1-"}


def forward(address: str, *, domain: str, now: float | None = None) -> str:
    """The envelope sender for a copy of mail from `address` forwarded by `domain` (one of
    ours). The null sender stays null; an address of `domain` itself needs no rewriting."""
    if not address or "@" not in address:
        return address
    local, _, orig_domain = address.rpartition("@")
    orig_domain = orig_domain.lower()
    if orig_domain == domain.lower():
        return address  # ours already (an SRS address of ours included): SPF passes
    match0 = _SRS0.match(local)
    if match0:
        # RFC-less but universal: SRS0 of another forwarder becomes SRS1, so the bounce goes
        # back through that forwarder (which alone can check its own hash).
        rest = local[4:]  # "=HHHH=TT=domain=local"
        return f"SRS1={_hash(orig_domain, rest)}={orig_domain}={rest}@{domain}"
    match1 = _SRS1.match(local)
    if match1:
        # Forwarded a third time: keep the first forwarder, re-sign for us.
        first, rest = match1["domain"], match1["rest"]
        return f"SRS1={_hash(first, rest)}={first}={rest}@{domain}"
    stamp = _timestamp(_today(now))
    return f"SRS0={_hash(stamp, orig_domain, local)}={stamp}={orig_domain}={local}@{domain}"


def reverse(local_part: str, *, now: float | None = None) -> str:
    """The address an SRS local part of ours stands for (an SRS1 one gives the SRS0 address
    at the first forwarder); raises SRSError when it is not valid here."""
    match1 = _SRS1.match(local_part)
    if match1:
        first, rest = match1["domain"], match1["rest"]
        if not hmac.compare_digest(match1["hash"].upper(), _hash(first, rest)):
            raise SRSError("bad SRS1 hash")
        return f"SRS0{rest}@{first}"
    match0 = _SRS0.match(local_part)
    if not match0:
        raise SRSError("not an SRS address")
    stamp, orig_domain, local = match0["tt"], match0["domain"], match0["local"]
    if not hmac.compare_digest(match0["hash"].upper(), _hash(stamp, orig_domain, local)):
        raise SRSError("bad SRS0 hash")
    if _age_days(stamp, _today(now)) > settings.MAILHOST_SRS_MAX_AGE:
        raise SRSError("SRS address expired")
    return f"{local}@{orig_domain}"

"""Signing keys for the domains of inbound tests: a private key in PEM for dkimpy and the TXT
value to publish at <selector>._domainkey.<domain> in the local DNS server."""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class SigningKey:
    pem: bytes
    txt: str


@functools.cache
def signing_key(name: str = "default") -> SigningKey:
    """One 2048-bit RSA key per name, made once per test run."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii"))


def publish(dns_server, domain: str, selector: str = "sel", key: str = "default") -> SigningKey:
    found = signing_key(key)
    dns_server.add_txt(f"{selector}._domainkey.{domain}", found.txt)
    return found


def sign(raw: bytes, domain: str, selector: str = "sel", key: str = "default") -> bytes:
    """`raw` with a relaxed/relaxed DKIM-Signature of `domain` on top."""
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        signing_key(key).pem,
        canonicalize=(b"relaxed", b"relaxed"),
    )
    return signature + raw


def arc_seal(raw: bytes, domain: str, srv_id: str, selector: str = "sel", key: str = "default"):
    """`raw` with the next ARC set of `domain` on top; the message must carry an
    Authentication-Results field of `srv_id` (what the sealer saw)."""
    headers = dkim.arc_sign(
        raw, selector.encode(), domain.encode(), signing_key(key).pem, srv_id.encode()
    )
    return b"".join(headers) + raw

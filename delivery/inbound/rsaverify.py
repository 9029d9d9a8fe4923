"""RSA signature checks for dkimpy through OpenSSL (the `cryptography` package).

dkimpy verifies RSASSA-PKCS1-v1_5 (RFC 8017 8.2.2) in pure Python: the modular
exponentiation and its byte conversions cost about 0.2 ms of CPU for a 2048-bit key, half of
a whole DKIM verification and a fifth of port 25's checks. `install()` points dkimpy's one
verification entry (dkim.RSASSA_PKCS1_v1_5_verify, which DKIM and ARC verification call) at
the same check done by OpenSSL; tests compare both on good and bad signatures.
"""

from __future__ import annotations

import functools

import dkim
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
_pure_python = dkim.RSASSA_PKCS1_v1_5_verify


@functools.lru_cache(maxsize=1024)
def _public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def rsassa_pkcs1_v1_5_verify(hash, signature: bytes, public_key: dict) -> bool:  # noqa: ANN001, A002
    """dkim.crypto.RSASSA_PKCS1_v1_5_verify's contract: `hash` a hash object (dkimpy's
    HashThrough), `public_key` dkimpy's dict of modulus and publicExponent."""
    algorithm = _HASHES.get(getattr(hash, "name", ""))
    try:
        key = _public_key(public_key["modulus"], public_key["publicExponent"])
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if algorithm is None or key is None:
        return _pure_python(hash, signature, public_key)
    try:
        key.verify(
            bytes(signature), hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm())
        )
    except InvalidSignature:
        return False
    return True


def install() -> None:
    dkim.RSASSA_PKCS1_v1_5_verify = rsassa_pkcs1_v1_5_verify

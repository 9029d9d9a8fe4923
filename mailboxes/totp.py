"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): SHA-1, 6 digits, 30 s steps,
the parameters every authenticator app (Google Authenticator, Aegis, 1Password) assumes.
Pure functions: the services keep the secret and the last step accepted (no code twice)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

DIGITS = 6
STEP_SECONDS = 30
# RFC 6238 5.2: accept one step either side, for clocks a little off and codes typed late.
WINDOW = 1


def new_secret() -> str:
    """160 random bits in base32 (RFC 4226 4 R6 recommends at least 128, 160 preferred)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def hotp(secret: str, counter: int) -> str:
    """RFC 4226 5.3: HMAC-SHA-1 of the counter, dynamically truncated to DIGITS digits."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def step_at(when: float | None = None) -> int:
    return int((time.time() if when is None else when) // STEP_SECONDS)


def code_at(secret: str, when: float | None = None) -> str:
    """The code an authenticator shows at `when` (now by default)."""
    return hotp(secret, step_at(when))


def verify(secret: str, code: str, *, last_step: int, when: float | None = None) -> int | None:
    """The time step `code` belongs to, within WINDOW of now and after `last_step` (a code
    already used is refused: RFC 6238 5.2), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = step_at(when)
    for step in range(now - WINDOW, now + WINDOW + 1):
        if step > last_step and hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the enrolment QR code (the Key Uri
    Format of Google Authenticator, which every app follows)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP_SECONDS}
    )
    return f"otpauth://totp/{label}?{query}"

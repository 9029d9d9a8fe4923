"""SASL PLAIN (RFC 4616) and LOGIN for every protocol's AUTH/AUTHENTICATE, without I/O.

A session makes an Exchange from the mechanism and the initial response (or None), sends each
Challenge it gets back in its own framing (the data as raw octets: each protocol encodes them
in base64 its own way) and feeds the client's answer to respond(), until Credentials come out.
The rules here are the same on every port:
- a response is base64 (strict: RFC 4648 alphabet and padding); "=" and the empty string are
  the empty response (RFC 4954 4, RFC 5034 4, RFC 9051 6.2.2, RFC 5804 2.1);
- "*" answering a challenge cancels the exchange (Cancelled); as an initial response it is
  not base64 (NotBase64);
- PLAIN's message is authzid NUL authcid NUL passwd, all UTF-8; LOGIN's two answers are the
  user name and the password, UTF-8. Anything else is Malformed.
Whether an authzid is the user's own is a question for the login (protocols.common.login),
which knows how addresses are looked up."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

PLAIN = "PLAIN"
LOGIN = "LOGIN"
MECHANISMS = (PLAIN, LOGIN)
# draft-murchison-sasl-login: the server's two prompts, in this spelling by convention.
LOGIN_PROMPTS = (b"Username:", b"Password:")


class Malformed(Exception):
    """The response is not what the mechanism takes (PLAIN's three fields, UTF-8)."""


class NotBase64(Malformed):
    """The response is not base64 text."""


class Cancelled(Exception):
    """The client answered a challenge with "*"."""


@dataclass(frozen=True)
class Challenge:
    data: bytes  # raw octets; the protocol sends them base64-encoded


@dataclass(frozen=True)
class Credentials:
    authcid: str  # the address the password belongs to
    password: str
    authzid: str = ""  # empty: act as authcid (RFC 4616 2)


def decode(response: str | bytes) -> bytes:
    """A client's base64 response as octets; NotBase64 when it is not base64."""
    text = response.strip()
    if text in ("=", b"="):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NotBase64("not base64") from None


def _text(octets: bytes) -> str:
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None


def plain(message: bytes) -> Credentials:
    """RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd."""
    fields = message.split(b"\0")
    if len(fields) != 3:
        raise Malformed("not authzid NUL authcid NUL passwd")
    authzid, authcid, password = (_text(field) for field in fields)
    return Credentials(authcid=authcid, password=password, authzid=authzid)


class Exchange:
    """One AUTH exchange of PLAIN or LOGIN (the caller has checked the mechanism name)."""

    def __init__(self, mechanism: str, initial: str | bytes | None = None) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"unsupported SASL mechanism {mechanism!r}")
        self.mechanism = mechanism
        self.initial = initial
        self.received: list[bytes] = []

    def start(self) -> Challenge | Credentials:
        """The first step: a challenge, or the credentials when the initial response holds
        them all."""
        if self.initial is None:
            return self._next_challenge()
        return self._feed(decode(self.initial))

    def respond(self, response: str | bytes) -> Challenge | Credentials:
        """The client's answer to the last challenge, as sent (base64 text, or "*")."""
        if response.strip() in ("*", b"*"):
            raise Cancelled()
        return self._feed(decode(response))

    def _feed(self, octets: bytes) -> Challenge | Credentials:
        self.received.append(octets)
        if self.mechanism == PLAIN:
            return plain(octets)
        if len(self.received) < len(LOGIN_PROMPTS):
            return self._next_challenge()
        user, password = (_text(octets) for octets in self.received)
        return Credentials(authcid=user, password=password)

    def _next_challenge(self) -> Challenge:
        if self.mechanism == PLAIN:
            return Challenge(b"")  # RFC 4616 2: the client speaks first
        return Challenge(LOGIN_PROMPTS[len(self.received)])

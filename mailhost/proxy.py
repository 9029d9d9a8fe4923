"""Who is on the other end of a web request, behind a reverse proxy or not.

`client_address(request)` is the one place the web app learns the client's address: the
login limiter, the access log and every view that records an address call it. The
X-Forwarded-For, -Proto and -Host headers are believed only from a peer listed in
MAILHOST_TRUSTED_PROXIES; from anyone else they are ignored (and removed, so that nothing
further down reads them by mistake).

X-Forwarded-For holds the addresses each proxy saw, oldest first: the client is the rightmost
address that is not one of our trusted proxies (everything left of it was written by the
client or by proxies we do not know, and may be forged).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
)
_RESOLVED = "mailhost.forwarded"  # the environ key holding the resolved Forwarded below


@dataclass(frozen=True)
class Forwarded:
    client: str  # the client's address, as the nearest untrusted hop
    peer: str  # who connected to us (REMOTE_ADDR)
    via_proxy: bool  # the peer is a trusted proxy and its headers were applied


def trusted_origins(allowed_hosts: Iterable[str]) -> list[str]:
    """CSRF_TRUSTED_ORIGINS for http and https of each allowed host, as Django spells a
    wildcard: `.example.org` allows example.org and every subdomain; `*` allows no origin
    beyond the request's own host (Django has no catch-all origin)."""
    origins: list[str] = []
    for host in allowed_hosts:
        host = host.strip().lower()
        if not host or host == "*":
            continue
        names = [host[1:], f"*{host}"] if host.startswith(".") else [host]
        origins.extend(f"{scheme}://{name}" for name in names for scheme in ("https", "http"))
    return origins


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:1234"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.5:1234"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def is_trusted_proxy(peer: str) -> bool:
    """Whether `peer` (an address as a socket reports it) is in MAILHOST_TRUSTED_PROXIES."""
    return _trusted(_address(peer), getattr(settings, "MAILHOST_TRUSTED_PROXIES", ()))


def _last_value(header: str) -> str:
    # A proxy that appends rather than replaces leaves the client's own value on the left.
    return header.rsplit(",", 1)[-1].strip()


def resolve(environ: MutableMapping) -> Forwarded:
    """Resolve the request's client, scheme and host once, applying a trusted proxy's
    headers to the environ (scheme and Host, which Django's CSRF check and is_secure() read).
    Idempotent: the WSGI wrapper and the Django middleware may both call it."""
    done = environ.get(_RESOLVED)
    if done is not None:
        return done
    peer = environ.get("REMOTE_ADDR", "") or ""
    networks: tuple[Network, ...] = getattr(settings, "MAILHOST_TRUSTED_PROXIES", ())
    peer_address = _address(peer)
    if not _trusted(peer_address, networks):
        for key in _FORWARDED_HEADERS:
            environ.pop(key, None)
        result = Forwarded(client=str(peer_address or peer), peer=peer, via_proxy=False)
        environ[_RESOLVED] = result
        return result
    client = str(peer_address)
    for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        if not hop.strip():
            continue
        address = _address(hop)
        if address is None:  # garbage: believe no further
            break
        client = str(address)
        if not _trusted(address, networks):
            break
    proto = _last_value(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
    if proto in {"http", "https"}:
        environ["wsgi.url_scheme"] = proto
    host = _last_value(environ.get("HTTP_X_FORWARDED_HOST", ""))
    if host:
        environ["HTTP_HOST"] = host
    result = Forwarded(client=client, peer=peer, via_proxy=True)
    environ[_RESOLVED] = result
    return result


def client_address(request) -> str:
    """The client's IP address for a Django request (or a WSGI environ): the one function the
    limiter, the logs and the views use."""
    environ = getattr(request, "META", request)
    return resolve(environ).client


class ForwardedMiddleware:
    """First in MIDDLEWARE: applies a trusted proxy's headers before anything reads the
    scheme or the host (SecurityMiddleware, CsrfViewMiddleware)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        resolve(request.META)
        return self.get_response(request)

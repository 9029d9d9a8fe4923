"""The PROXY protocol (v1 text, v2 binary) in front of every mail listener.

A TCP load balancer (HAProxy `send-proxy` / `send-proxy-v2`) opens each connection with a
header naming the real client. A connection from a MAILHOST_PROXY_TRUSTED address must begin
with one (else it is closed); the address it carries is then the connection's peer for
everything that reads `get_extra_info("peername")`: per-IP caps, the login limiter, logs, SPF
and the Received header. A connection from anyone else is served directly: a PROXY header from
them is not believed, just bad input for the protocol behind.

The header comes before any TLS, so an implicit-TLS listener (465, 993, 995) accepts the TCP
connection plain, reads the header byte-exactly off the socket (what follows is the client's
TLS ClientHello and must not be consumed), and then starts TLS on that socket.

With MAILHOST_PROXY_TRUSTED unset, `create_server` is `loop.create_server`, nothing more.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl as ssl_module
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

HEADER_TIMEOUT = 10  # seconds for the load balancer's header
TLS_HANDSHAKE_TIMEOUT = 30
V1_MAX = 107  # RFC: "PROXY TCP6 ffff:...:ffff ffff:...:ffff 65535 65535\r\n"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MAX_BODY = 1024  # addresses plus TLVs a balancer may add (ALPN, authority, CRC)


class ProxyHeaderError(ValueError):
    """The connection did not start with a valid PROXY header."""


@dataclass(frozen=True)
class ProxyHeader:
    # The client's (address, port), or None: "PROXY UNKNOWN" / v2 LOCAL (health checks),
    # where the connection is the balancer's own and its address stays the peer.
    source: tuple[str, int] | None


def parse_v1(line: bytes) -> ProxyHeader:
    """One v1 line, "\\r\\n" included."""
    if not line.startswith(b"PROXY ") or not line.endswith(b"\r\n") or len(line) > V1_MAX:
        raise ProxyHeaderError("not a PROXY v1 line")
    try:
        fields = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("not ASCII") from None
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(source=None)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("bad PROXY v1 fields")
    _, family, src, dst, sport, dport = fields
    try:
        src_ip, dst_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError:
        raise ProxyHeaderError("bad address") from None
    version = 4 if family == "TCP4" else 6
    if src_ip.version != version or dst_ip.version != version:
        raise ProxyHeaderError("address does not match its family")
    for port in (sport, dport):
        if not port.isdigit() or int(port) > 65535 or (len(port) > 1 and port[0] == "0"):
            raise ProxyHeaderError("bad port")
    return ProxyHeader(source=(str(src_ip), int(sport)))


def parse_v2(head: bytes, body: bytes) -> ProxyHeader:
    """The 16-byte v2 preamble and the body its length announces."""
    if len(head) != 16 or not head.startswith(V2_SIGNATURE):
        raise ProxyHeaderError("not a PROXY v2 header")
    version_command, family = head[12], head[13]
    if version_command >> 4 != 2:
        raise ProxyHeaderError("unknown PROXY v2 version")
    command = version_command & 0x0F
    if command == 0:  # LOCAL: the balancer's own connection (health check)
        return ProxyHeader(source=None)
    if command != 1:
        raise ProxyHeaderError("unknown PROXY v2 command")
    if family == 0x11:  # TCP over IPv4
        if len(body) < 12:
            raise ProxyHeaderError("short IPv4 addresses")
        src = ipaddress.IPv4Address(body[0:4])
        (sport,) = struct.unpack("!H", body[8:10])
    elif family == 0x21:  # TCP over IPv6
        if len(body) < 36:
            raise ProxyHeaderError("short IPv6 addresses")
        src = ipaddress.IPv6Address(body[0:16])
        (sport,) = struct.unpack("!H", body[32:34])
    elif family == 0x00:  # UNSPEC
        return ProxyHeader(source=None)
    else:
        raise ProxyHeaderError("unsupported PROXY v2 family")
    return ProxyHeader(source=(str(src), sport))


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await loop.sock_recv(sock, n - len(data))
        if not chunk:
            raise ProxyHeaderError("connection closed before the header's end")
        data += chunk
    return data


async def read_header(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> ProxyHeader:
    """Read one header off a non-blocking socket, not a byte more."""
    start = await _recv_exactly(loop, sock, 6)
    if start == b"PROXY ":
        line = start
        while not line.endswith(b"\r\n"):
            if len(line) >= V1_MAX:
                raise ProxyHeaderError("PROXY v1 line too long")
            line += await _recv_exactly(loop, sock, 1)
        return parse_v1(line)
    if V2_SIGNATURE.startswith(start):
        head = start + await _recv_exactly(loop, sock, 10)
        (length,) = struct.unpack("!H", head[14:16])
        if length > V2_MAX_BODY:
            raise ProxyHeaderError("PROXY v2 body too long")
        body = await _recv_exactly(loop, sock, length) if length else b""
        return parse_v2(head, body)
    raise ProxyHeaderError("no PROXY header")


def is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in settings.MAILHOST_PROXY_TRUSTED)


class _ProxiedSocket(socket.socket):
    """The accepted socket, whose peer is the client the header named: the transport asyncio
    builds on it records that as its "peername"."""

    proxied_peer: tuple[str, int]

    def getpeername(self) -> Any:
        return self.proxied_peer


class _Accept(asyncio.Protocol):
    """Stands in for the listener's protocol for the first moment of each connection: takes
    the socket out of its plain transport and hands it on, after the header when the peer is
    a trusted balancer, with TLS on implicit-TLS listeners."""

    def __init__(
        self, factory: Callable[[], asyncio.BaseProtocol], tls, timeout, name: str, listening
    ):
        self.factory = factory
        self.tls = tls
        self.timeout = timeout
        self.name = name
        self.listening = listening  # the asyncio.Server, once made: is it still serving?

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        raw = transport.get_extra_info("socket")
        try:
            sock = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
        except OSError:
            transport.abort()
            return
        transport.abort()  # closes its own descriptor only: the connection lives on in sock
        sock.setblocking(False)
        asyncio.get_running_loop().create_task(self._hand_on(sock, peer))

    async def _hand_on(self, sock: socket.socket, peer: Any) -> None:
        loop = asyncio.get_running_loop()
        peer_ip = peer[0] if peer else ""
        if is_trusted(peer_ip):
            try:
                header = await asyncio.wait_for(read_header(loop, sock), HEADER_TIMEOUT)
            except (ProxyHeaderError, TimeoutError, OSError) as exc:
                reason = str(exc) or "timeout"
                logger.warning(
                    "proxy_refused listener=%s peer=%s reason=%r", self.name, peer_ip, reason
                )
                sock.close()
                return
            if header.source is not None:
                proxied = _ProxiedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
                proxied.proxied_peer = header.source
                sock = proxied
                logger.info(
                    "proxy_accepted listener=%s peer=%s client=%s",
                    self.name,
                    peer_ip,
                    header.source[0],
                )
        server = self.listening()
        if server is not None and not server.is_serving():
            sock.close()  # the listener stopped while the header was on its way
            return
        try:
            await loop.connect_accepted_socket(
                self.factory,
                sock,
                ssl=self.tls,
                ssl_handshake_timeout=self.timeout if self.tls is not None else None,
            )
        except (OSError, ssl_module.SSLError, TimeoutError, ConnectionError):
            sock.close()


async def create_server(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.BaseProtocol],
    host: Any,
    port: int,
    *,
    name: str,
    ssl: ssl_module.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    **kwargs: Any,
) -> asyncio.Server:
    """`loop.create_server`, with PROXY headers read from MAILHOST_PROXY_TRUSTED peers."""
    if not settings.MAILHOST_PROXY_TRUSTED:
        if ssl is not None and ssl_handshake_timeout is not None:
            kwargs["ssl_handshake_timeout"] = ssl_handshake_timeout
        return await loop.create_server(factory, host, port, ssl=ssl, **kwargs)
    timeout = ssl_handshake_timeout or TLS_HANDSHAKE_TIMEOUT
    made: list[asyncio.Server] = []

    def listening() -> asyncio.Server | None:
        return made[0] if made else None

    server = await loop.create_server(
        lambda: _Accept(factory, ssl, timeout, name, listening), host, port, **kwargs
    )
    made.append(server)
    return server

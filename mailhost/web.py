"""The web app (webmail and admin) inside `runmail`, served by waitress in a thread.

Production deployments run `gunicorn mailhost.wsgi` instead, behind a reverse proxy.

Why a slow client cannot starve it: waitress reads every request (head and body) on its one
I/O thread and hands it to a worker thread only once it is complete, and it queues responses
(beyond 1 MB in temporary files) for that thread to send, so a worker never waits on a
client's network: neither on one that sends slowly nor, with outbuf_high_watermark above any
response, on one that does not read. What a stranger can still hold is
connections, so they are bounded here:
- per client address (MAILHOST_WEB_MAX_CONNECTIONS_PER_IP; trusted proxies are exempt, every
  user comes through them): a connection beyond it gets 503 and is closed at once;
- in total (MAILHOST_WEB_MAX_CONNECTIONS);
- in time (MAILHOST_WEB_REQUEST_TIMEOUT): a request head must arrive in full within it, and a
  connection that sends nothing (idle, or stalled in a body) for that long is closed.
Before this, 100 connections sending half a request filled waitress's default limit of 100
and it stopped accepting anyone for two minutes.

HTTPS (MAILHOST_WEBS_PORT): waitress has no TLS, so an asyncio listener terminates it (with
mailhost.tls's context, reloaded on SIGHUP) and relays the plaintext to waitress's socket.
The relay binds its local end before connecting and registers that address in `_relayed`, so
waitress's accept maps it back to the real client (caps and REMOTE_ADDR count the client, not
the relay) and marks the channel secure (wsgi.url_scheme https, so HSTS is sent). Nothing a
client sends can claim either: only sockets this process bound are in the table. Plain HTTP
then answers 301 to the HTTPS port, except REDIRECT_EXEMPT paths and trusted proxies (which
terminate TLS themselves).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections import Counter
from urllib.parse import quote

from django.conf import settings
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import WSGITask

from mailhost import acme, tls
from mailhost.listeners import Listener
from mailhost.proxy import is_trusted_proxy

logger = logging.getLogger(__name__)

TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Retry-After: 10\r\nContent-Length: 41\r\n\r\nToo many connections from your address.\r\n"
)


def address_key(client: str) -> str:
    """What the per-address cap counts: an IPv4 address, or an IPv6 /64 (one subscriber's
    usual allocation, from which a client can pick any number of addresses)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return client


# Paths that stay on plain HTTP when HTTPS is on: monitoring and health checks, and
# /.well-known/ (ACME http-01 challenges, MTA-STS, autoconfig clients).
REDIRECT_EXEMPT = ("/healthz", "/metrics", "/.well-known/")

# Relay connections from the HTTPS listener, by their local address: the real client address.
_relayed: dict[tuple[str, int], tuple[str, int]] = {}
_relayed_lock = threading.Lock()


class GuardedTask(WSGITask):
    def get_environment(self) -> dict:
        environ = super().get_environment()
        if getattr(self.channel, "secure", False):
            environ["wsgi.url_scheme"] = "https"
            environ["SERVER_PORT"] = str(self.channel.server.https_port)
        return environ


class GuardedChannel(HTTPChannel):
    """Counts itself per client address while open, and remembers when the request being
    received began (its first octet)."""

    task_class = GuardedTask
    request_started: float | None = None
    counted_as: str | None = None
    secure = False

    def __init__(self, server, sock, addr, adj, map=None) -> None:
        super().__init__(server, sock, addr, adj, map)
        if isinstance(addr, tuple) and self.connected:
            self.counted_as = address_key(addr[0])
            server.count_connection(self.counted_as, +1)

    def del_channel(self, map=None) -> None:
        super().del_channel(map)
        if self.counted_as is not None:
            self.server.count_connection(self.counted_as, -1)
            self.counted_as = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.time()
        result = super().received(data)
        if self.request is None:
            self.request_started = None
        return result


class GuardedServer(TcpWSGIServer):
    channel_class = GuardedChannel
    https_port: int | None = None  # the HTTPS listener's port, once it listens
    # A flood is logged once per address per this many seconds, with the number refused.
    REFUSAL_LOG_INTERVAL = 60.0

    def __init__(self, *args, **kwargs) -> None:
        self._per_address: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._refusals: dict[str, tuple[float, int]] = {}  # key -> (last logged, since)
        super().__init__(*args, **kwargs)

    def count_connection(self, key: str, delta: int) -> None:
        with self._count_lock:
            self._per_address[key] += delta
            if self._per_address[key] <= 0:
                del self._per_address[key]

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn, addr = accepted
        secure = False
        if isinstance(addr, tuple):
            with _relayed_lock:
                real = _relayed.pop(addr[:2], None)
            if real is not None:
                addr, secure = real, True
        client = addr[0] if isinstance(addr, tuple) else ""
        key = address_key(client)
        limit = settings.MAILHOST_WEB_MAX_CONNECTIONS_PER_IP
        if self._per_address[key] >= limit and not is_trusted_proxy(client):
            self._log_refusal(client, key, limit)
            try:
                conn.send(TOO_MANY_CONNECTIONS, socket.MSG_DONTWAIT)
            except OSError:
                pass
            conn.close()
            return
        channel = self.channel_class(self, conn, addr, self.adj, map=self._map)
        channel.secure = secure

    def _log_refusal(self, client: str, key: str, limit: int) -> None:
        now = time.monotonic()
        last, count = self._refusals.get(key, (0.0, 0))
        count += 1
        if now - last < self.REFUSAL_LOG_INTERVAL:
            self._refusals[key] = (last, count)
            return
        if len(self._refusals) > 10_000:  # forget old floods rather than grow without end
            self._refusals.clear()
        self._refusals[key] = (now, 0)
        logger.warning(
            'web refused client=%s refused=%d reason="more than %d connections from this address"',
            client,
            count,
            limit,
        )

    def maintenance(self, now: float) -> None:
        # Waitress closes channels without activity for channel_timeout seconds (idle, or a
        # stalled body); a head trickled a byte at a time (slowloris) is cut here.
        super().maintenance(now)
        cutoff = now - self.adj.channel_timeout
        for channel in list(self.active_channels.values()):
            started = getattr(channel, "request_started", None)
            request = channel.request
            if started is None or request is None or started >= cutoff:
                continue
            if not request.headers_finished and not channel.will_close:
                logger.info(
                    'web timeout client=%s reason="request head not received in %d s"',
                    channel.addr[0] if isinstance(channel.addr, tuple) else "",
                    self.adj.channel_timeout,
                )
                channel.will_close = True


class WebServer:
    def __init__(self, host: str, port: int) -> None:
        from mailhost.static import application_with_static

        timeout = settings.MAILHOST_WEB_REQUEST_TIMEOUT
        adjustments = Adjustments(
            host=host,
            port=port,
            threads=settings.MAILHOST_WEB_THREADS,
            ident="Mailhost",
            backlog=settings.MAILHOST_LISTEN_BACKLOG,
            # Waitress counts its listening socket and its wake-up pipe among the connections.
            connection_limit=settings.MAILHOST_WEB_MAX_CONNECTIONS + 2,
            channel_timeout=timeout,
            # How often the timeouts above are checked, so a connection is cut within a second
            # or so of its deadline.
            cleanup_interval=1,
            # select() fails beyond file descriptor 1023, which runmail's other listeners
            # reach; poll() has no such limit.
            asyncore_use_poll=True,
            max_request_body_size=2 * settings.MAILHOST_MAX_MESSAGE_SIZE,
            # A worker hands a response to the I/O thread and goes back to work; it would wait
            # only when more than this is queued unsent on the connection (a client that does
            # not read), so make it more than any response we make: one message, as stored.
            outbuf_high_watermark=2 * settings.MAILHOST_MAX_MESSAGE_SIZE + (1 << 20),
            # X-Forwarded-* are mailhost.proxy's business (MAILHOST_TRUSTED_PROXIES): waitress
            # must neither believe nor remove them.
            clear_untrusted_proxy_headers=False,
        )
        self._server = GuardedServer(
            RedirectToHttps(application_with_static(), self),
            map={},
            adj=adjustments,
            sockinfo=adjustments.listen[0],
        )
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._run, name="mailhost-web", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # closed under it at shutdown
            pass

    def close(self) -> None:
        from webmail import push

        push.release_all()  # held long-polls answer now, while their sockets are open
        self._server.close()

    async def wait_closed(self) -> None:
        await asyncio.to_thread(self._thread.join, 5)

    @property
    def https_port(self) -> int | None:
        return self._server.https_port

    @https_port.setter
    def https_port(self, port: int) -> None:
        self._server.https_port = port

    def relay_target(self) -> tuple[str, int]:
        """Where the HTTPS relay connects: waitress's socket (loopback if it binds all)."""
        host = self._server.socket.getsockname()[0]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return host, self.port


class RedirectToHttps:
    """301 from plain HTTP to the HTTPS port (when there is one), for every path but the
    REDIRECT_EXEMPT ones and requests through a trusted proxy."""

    def __init__(self, application, server: WebServer) -> None:
        self.application = application
        self.server = server

    def __call__(self, environ, start_response):
        port = self.server.https_port
        path = environ.get("PATH_INFO", "")
        if (
            port is None
            or environ.get("wsgi.url_scheme") == "https"
            or path.startswith(REDIRECT_EXEMPT)
            or is_trusted_proxy(environ.get("REMOTE_ADDR", ""))
        ):
            return self.application(environ, start_response)
        host = _host_without_port(environ.get("HTTP_HOST", "")) or settings.MAILHOST_HOSTNAME
        location = f"https://{host}{'' if port == 443 else f':{port}'}{quote(path)}"
        if environ.get("QUERY_STRING"):
            location += "?" + environ["QUERY_STRING"]
        body = b"Moved to HTTPS.\r\n"
        start_response(
            "301 Moved Permanently",
            [
                ("Location", location),
                ("Content-Type", "text/plain"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


def _host_without_port(host: str) -> str:
    if host.startswith("["):  # [IPv6]:port
        return host[: host.find("]") + 1] if "]" in host else ""
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    # Only what a host name or address may hold: never a way to redirect elsewhere.
    return host if host and all(c.isalnum() or c in ".-" for c in host) else ""


class HttpsRelay:
    """The HTTPS listener: TLS ends here, the plaintext goes to waitress (see the module's
    docstring)."""

    def __init__(self, web: WebServer) -> None:
        self.web = web
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> None:
        context = await asyncio.to_thread(tls.server_context)
        self.server = await asyncio.start_server(
            self._serve,
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=settings.MAILHOST_WEB_REQUEST_TIMEOUT,
            backlog=settings.MAILHOST_LISTEN_BACKLOG,
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == acme.ALPN_PROTOCOL:
            # An ACME tls-alpn-01 validation: the handshake was the answer (RFC 8737 3).
            writer.close()
            return
        task = asyncio.current_task()
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        host, port = self.web.relay_target()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY too
        key = None
        try:
            sock.setblocking(False)
            sock.bind((host, 0))
            key = sock.getsockname()[:2]
            with _relayed_lock:
                _relayed[key] = (peer[0], peer[1])
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            up_reader, up_writer = await asyncio.open_connection(sock=sock)
        except OSError:
            if key is not None:
                with _relayed_lock:
                    _relayed.pop(key, None)
            sock.close()
            writer.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for stream in (up_writer, writer):
                stream.close()
            self._tasks.discard(task)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def wait_closed(self) -> None:
        # Waitress finishes or closes what it has; the relays follow their upstream closing.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
        else:  # TLS has no half-close: the client has what waitress sent
            sink.close()
    except (OSError, asyncio.IncompleteReadError):
        sink.close()


async def start() -> list[Listener]:
    server = WebServer(settings.MAILHOST_BIND, settings.MAILHOST_WEB_PORT)
    logger.info("web app on %s:%s", settings.MAILHOST_BIND, server.port)
    listeners = [Listener("web", server)]
    if settings.MAILHOST_WEBS_PORT is not None:
        relay = HttpsRelay(server)
        try:
            await relay.start(settings.MAILHOST_BIND, settings.MAILHOST_WEBS_PORT)
        except OSError:
            server.close()
            raise
        server.https_port = relay.port
        logger.info("web app over https on %s:%s", settings.MAILHOST_BIND, relay.port)
        listeners.append(Listener("webs", relay))
    return listeners

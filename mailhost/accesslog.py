"""The web access log: one line per request, when its response has been sent.

    web request client=203.0.113.9 method=GET path=/login/ status=200 bytes=2312 ms=4.1

A WSGI wrapper rather than a Django middleware, so that it counts the bytes actually sent
(streamed downloads included), the time until the last of them, and the static files that
`runmail` serves beside Django. The client is mailhost.proxy's (trusted X-Forwarded-For).
Paths are logged percent-encoded, without the query string (it may carry tokens).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

from mailhost.proxy import resolve

logger = logging.getLogger("mailhost.web")

# What RFC 3986 allows unencoded in a path, "%" included: never a space, quote or newline.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def access_line(*, client: str, method: str, path: str, status: str, size: int, ms: float) -> str:
    # WSGI gives the path as latin-1 text holding the raw octets (PEP 3333).
    path = quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE)
    return (
        f"web request client={client} method={quote(method, safe='')}"
        f" path={path} status={status.split(' ', 1)[0]}"
        f" bytes={size} ms={ms:.1f}"
    )


class AccessLog:
    def __init__(self, application) -> None:
        self.application = application

    def __call__(self, environ, start_response):
        started = time.monotonic()
        client = resolve(environ).client
        status = ["-"]

        def recording_start_response(status_line, headers, exc_info=None):
            status[0] = status_line
            return start_response(status_line, headers, exc_info)

        try:
            body = self.application(environ, recording_start_response)
        except BaseException:
            self._log(environ, client, "500", 0, started)
            raise
        return _Counted(body, lambda size: self._log(environ, client, status[0], size, started))

    @staticmethod
    def _log(environ, client: str, status: str, size: int, started: float) -> None:
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
        line = access_line(
            client=client,
            method=environ.get("REQUEST_METHOD", "-"),
            path=path,
            status=status,
            size=size,
            ms=(time.monotonic() - started) * 1000,
        )
        logger.info("%s", line)


class _Counted:
    """The response body, passed through; counts the bytes, logs when the server closes it
    (PEP 3333: the server calls close() however the response ends)."""

    def __init__(self, body, done) -> None:
        self._body = body
        self._done = done
        self._size = 0

    def __iter__(self):
        for chunk in self._body:
            self._size += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._size)

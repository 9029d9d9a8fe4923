"""The web app (webmail and admin) inside `runmail`, served by waitress in a thread.

Production deployments run `gunicorn mailhost.wsgi` instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from django.conf import settings

from protocols.listeners import Listener

logger = logging.getLogger(__name__)


class WebServer:
    def __init__(self, host: str, port: int) -> None:
        from waitress.server import create_server

        from mailhost.static import application_with_static

        self._server = create_server(
            application_with_static(),
            host=host,
            port=port,
            threads=8,
            ident="Mailhost",
            backlog=settings.MAILHOST_LISTEN_BACKLOG,
        )
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._run, name="mailhost-web", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # closed under it at shutdown
            pass

    def close(self) -> None:
        self._server.close()

    async def wait_closed(self) -> None:
        await asyncio.to_thread(self._thread.join, 5)


async def start() -> list[Listener]:
    server = WebServer(settings.MAILHOST_BIND, settings.MAILHOST_WEB_PORT)
    logger.info("web app on %s:%s", settings.MAILHOST_BIND, server.port)
    return [Listener("web", server)]

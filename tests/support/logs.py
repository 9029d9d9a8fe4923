"""Log messages of server threads, for tests that assert on log lines.

Not pytest's caplog: starting the web app runs django.setup(), whose logging configuration
replaces the root logger's handlers (caplog's among them). A handler on a named logger stays.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _Waiting:
    messages: list[str]

    def wait_for(self, prefix: str, count: int, timeout: float = 5) -> list[str]:
        """The messages starting with prefix, once there are `count` of them (or the time is
        up): a web access line is written just after the client has read the response."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [m for m in self.messages if m.startswith(prefix)]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


class LogLines(_Waiting, logging.Handler):
    """Messages of server threads in this process."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class ServerLog(_Waiting):
    """Messages of a server in a child process: its stderr, in settings.LOGGING's format
    (time, level, logger name, message)."""

    LINE = re.compile(r"^\S+ \S+ \S+ \S+ (.*)$")

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def messages(self) -> list[str]:
        text = self.path.read_text(errors="replace") if self.path.exists() else ""
        return [m.group(1) for m in map(self.LINE.match, text.splitlines()) if m]


@contextmanager
def log_lines(*names: str) -> Iterator[LogLines]:
    handler = LogLines()
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)

"""Log messages of server threads, for tests that assert on log lines.

Not pytest's caplog: starting the web app runs django.setup(), whose logging configuration
replaces the root logger's handlers (caplog's among them). A handler on a named logger stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager


class LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def wait_for(self, prefix: str, count: int, timeout: float = 5) -> list[str]:
        """The messages starting with prefix, once there are `count` of them (or the time is
        up): a web access line is written just after the client has read the response."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [m for m in self.messages if m.startswith(prefix)]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)


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

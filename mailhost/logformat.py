"""The log lines' formatter: logging.Formatter's text, with the time's seconds formatted once a
second instead of once a line (port 25 writes two lines a message)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

# The servers' line (settings.LOGGING's "plain" formatter).
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class PlainFormatter(logging.Formatter):
    """logging.Formatter whose asctime text (its default_time_format, then the milliseconds)
    is the same, with time.strftime run once per second of record times, not per record."""

    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        """Formatter.format's line; for the servers' format (LINE_FORMAT, no defaults) and a
        record without traceback or stack, its text made by one %-format of the four values
        (Formatter.format asks usesTime twice and %-formats the record's whole __dict__)."""
        if (
            self._fmt != LINE_FORMAT
            or type(self._style) is not logging.PercentStyle
            or self._style._defaults
            or record.exc_info
            or record.exc_text
            or record.stack_info
        ):
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        # %s, not a format specifier: str() of each value, as LINE_FORMAT converts them
        return "%s %s %s %s" % (  # noqa: UP031
            record.asctime,
            record.levelname,
            record.name,
            record.message,
        )

    # logging's own method name
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        seen, text = self._second  # one tuple read: threads share the formatter
        if second != seen:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)
        return self.default_msec_format % (text, record.msecs)


# The pathname of a record made without the caller's frame (logging._srcfile None).
_UNKNOWN_FILE = "(unknown file)"


class LeanRecord(logging.LogRecord):
    """A LogRecord with the same attributes, made without the file-name splitting and the
    thread and process lookups when lean_records' switches leave nothing for them: its
    file name and module are "(unknown file)" (what os.path would make of that path), its
    thread and process None. Any other record is made by LogRecord itself."""

    def __init__(
        self,
        name: str,
        level: int,
        pathname: str,
        lineno: int,
        msg: object,
        args: Any,  # noqa: ANN401 - LogRecord's
        exc_info: Any,  # noqa: ANN401 - LogRecord's
        func: str | None = None,
        sinfo: str | None = None,
        **kwargs: Any,  # noqa: ANN401 - LogRecord's
    ) -> None:
        if (
            pathname != _UNKNOWN_FILE
            or logging.logThreads
            or logging.logProcesses
            or logging.logMultiprocessing
        ):
            super().__init__(
                name, level, pathname, lineno, msg, args, exc_info, func, sinfo, **kwargs
            )
            return
        created = time.time()
        self.name = name
        self.msg = msg
        if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            args = args[0]
        self.args = args
        self.levelname = logging.getLevelName(level)
        self.levelno = level
        self.pathname = self.filename = self.module = pathname
        self.exc_info = exc_info
        self.exc_text = None
        self.stack_info = sinfo
        self.lineno = lineno
        self.funcName = func
        self.created = created
        self.msecs = int((created - int(created)) * 1000) + 0.0
        self.relativeCreated = (created - logging._startTime) * 1000
        self.thread = self.threadName = self.processName = self.process = None


def lean_records() -> None:
    """The servers' log records skip what no line of theirs shows (the format above: time,
    level, logger, message): the caller's file and line (a walk up the stack a record), and
    the thread's and process's names. The logging documentation's "Optimization" switches,
    and records made by LeanRecord; set in runmail's processes only, so that tests' and
    commands' records keep them."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.setLogRecordFactory(LeanRecord)

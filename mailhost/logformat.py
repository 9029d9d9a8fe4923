"""The log lines' formatter: logging.Formatter's text, with the time's seconds formatted once a
second instead of once a line (port 25 writes two lines a message)."""

from __future__ import annotations

import logging
import time

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


def lean_records() -> None:
    """The servers' log records skip what no line of theirs shows (the format above: time,
    level, logger, message): the caller's file and line (a walk up the stack a record), and
    the thread's and process's names. The logging documentation's "Optimization" switches;
    set in runmail's processes only, so that tests' and commands' records keep them."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False

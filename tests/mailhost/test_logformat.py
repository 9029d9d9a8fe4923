"""The log lines' formatter (mailhost.logformat): logging.Formatter's text, the time's seconds
formatted once a second."""

from __future__ import annotations

import logging
import sys
import time
from unittest import mock

from django.conf import settings

from mailhost import logformat

FORMAT = settings.LOGGING["formatters"]["plain"]["format"]


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("mailhost.smtp", logging.INFO, __file__, 1, "smtp %s", ("x",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_lines_are_logging_formatters_lines():
    plain, ours = logging.Formatter(FORMAT), logformat.PlainFormatter(FORMAT)
    for created in (1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.0005, 1_700_003_600.25):
        record = _record(created)
        assert ours.format(record) == plain.format(record)


def test_every_kind_of_record_is_formatted_as_logging_formats_it():
    # The servers' format is made by one %-format of its four values; the other records
    # (a traceback, a stack) and other formats go through Formatter.format: the same text.
    assert FORMAT == logformat.LINE_FORMAT
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    records = [
        logging.LogRecord("mailhost.smtp", logging.INFO, __file__, 1, "a %s b %d", ("x", 3), None),
        logging.LogRecord("m", logging.WARNING, __file__, 1, "%(k)s", ({"k": "v"},), None),
        logging.LogRecord("m", logging.ERROR, __file__, 1, ValueError("obj"), (), None),
        logging.LogRecord("m", logging.ERROR, __file__, 1, "failed", (), exc_info),
        logging.LogRecord("m", logging.INFO, __file__, 1, "stack", (), None, sinfo="Stack:\n x"),
    ]
    for fmt in (FORMAT, "%(levelname)s %(message)s"):
        plain, ours = logging.Formatter(fmt), logformat.PlainFormatter(fmt)
        for record in records:
            expected = plain.format(record)
            record.exc_text = None
            assert ours.format(record) == expected


def test_settings_formatter_formats_the_seconds_once_a_second():
    (console,) = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    formatter = console.formatter
    assert isinstance(formatter, logformat.PlainFormatter)
    with mock.patch.object(time, "strftime", wraps=time.strftime) as strftime:
        for created in (1_800_000_000.1, 1_800_000_000.5, 1_800_000_000.9, 1_800_000_001.2):
            formatter.format(_record(created))
    assert strftime.call_count == 2


def test_lean_records_skip_the_caller_and_the_thread(monkeypatch):
    for name in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, getattr(logging, name))
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    logformat.lean_records()
    assert logging.getLogRecordFactory() is logformat.LeanRecord
    record = logging.getLogger("mailhost.test").makeRecord(
        "mailhost.test", logging.INFO, "(unknown file)", 0, "line", (), None
    )
    assert record.threadName is None and record.processName is None
    assert logging._srcfile is None


def _fields(record: logging.LogRecord) -> dict:
    fields = dict(vars(record))
    for timed in ("created", "msecs", "relativeCreated"):
        assert isinstance(fields.pop(timed), float)
    return fields


def test_a_lean_record_has_a_log_records_attributes(monkeypatch):
    # With lean_records' switches, the same attributes and values as LogRecord's own (the
    # times aside); with any switch on, or a caller's file, LogRecord makes it.
    for name in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, False)
    made = [
        ("mailhost.smtp", logging.INFO, "(unknown file)", 0, "a %s", ("x",), None),
        ("m", logging.WARNING, "(unknown file)", 0, "%(k)s", ({"k": "v"},), None, "f", "s"),
        ("m", 35, "(unknown file)", 0, "no args", (), None),
        ("m", logging.ERROR, "/srv/app/mod.py", 7, "x", (), None),
    ]
    for args in made:
        assert _fields(logformat.LeanRecord(*args)) == _fields(logging.LogRecord(*args))
    monkeypatch.setattr(logging, "logThreads", True)
    record = logformat.LeanRecord(*made[0])
    assert record.threadName is not None
    assert _fields(record) == _fields(logging.LogRecord(*made[0]))

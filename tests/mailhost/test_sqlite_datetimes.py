"""mailhost.sqlite3's datetime conversions, made in place of django.utils.timezone's calls,
give what Django's SQLite backend gives: the same parameters, the same values read, the same
errors, with USE_TZ on and off."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.db import connection
from django.db.backends.sqlite3.operations import DatabaseOperations as DjangoOperations
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's backend")

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
VALUES = [
    None,
    datetime.datetime(2026, 12, 5, 6, 1, 2, 345678, tzinfo=datetime.UTC),
    datetime.datetime(2026, 12, 5, 6, 1, 2, tzinfo=datetime.UTC),  # no microseconds
    datetime.datetime(1, 1, 1, tzinfo=datetime.UTC),
    datetime.datetime(2026, 12, 5, 6, 1, 2, 5, tzinfo=datetime.timezone(datetime.timedelta(0))),
    datetime.datetime(2026, 3, 29, 2, 30, tzinfo=PARIS),  # in the spring gap
    datetime.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
    datetime.datetime(2026, 12, 5, 6, 1, 2),  # naive
]
TEXTS = [
    None,
    "2026-12-05 06:01:02.345678",
    "2026-12-05 06:01:02",
    "2026-12-05T06:01:02+02:00",
    "2026-12-05 06:01:02.5",
    "2026-12-05 06:01",
    "2026-12-05",
    "2026-12-05T06:01:02Z",
    "2026-12-05 06:01:02-05:00",
    "2026-12-05 06:01:02+00:00",
    "not a time",
    "",
]


def outcome(function, *args):  # noqa: ANN001, ANN201
    try:
        value = function(*args)
    except Exception as exc:  # noqa: BLE001 - the error is the answer compared
        return type(exc), str(exc)
    # Aware datetimes equal by their instant: their zone and fields compared too.
    return value, repr(value), getattr(value, "tzinfo", None)


@pytest.mark.parametrize("use_tz", [True, False])
def test_the_conversions_are_djangos(settings, use_tz):
    settings.USE_TZ = use_tz
    connection.__dict__.pop("timezone", None)  # a cached_property of the connection
    ours, django = connection.ops, DjangoOperations(connection)
    assert type(ours) is not DjangoOperations
    for value in VALUES:
        expected = outcome(django.adapt_datetimefield_value, value)
        assert outcome(ours.adapt_datetimefield_value, value) == expected, value
    for text in TEXTS + VALUES[1:]:
        expected = outcome(django.convert_datetimefield_value, text, None, connection)
        assert outcome(ours.convert_datetimefield_value, text, None, connection) == expected
    connection.__dict__.pop("timezone", None)


@settings_hypothesis(max_examples=300, deadline=None)
@given(moment=st.datetimes(timezones=st.just(datetime.UTC)))
def test_utc_times_and_their_texts_convert_as_djangos(moment):
    """The UTC fast paths (timezone.now()'s values, the texts stored of them) against
    Django's conversions, for any time, with or without microseconds."""
    connection.__dict__.pop("timezone", None)
    ours, django = connection.ops, DjangoOperations(connection)
    text = django.adapt_datetimefield_value(moment)
    assert outcome(ours.adapt_datetimefield_value, moment) == outcome(lambda: text)
    for stored in (text, text.replace(" ", "T"), text[:19]):
        expected = outcome(django.convert_datetimefield_value, stored, None, connection)
        assert outcome(ours.convert_datetimefield_value, stored, None, connection) == expected

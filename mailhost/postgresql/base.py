"""Django's PostgreSQL backend with mailhost.dbcursor's cursor wrapper (its attributes named,
not found by __getattr__ after a failed lookup)."""

from __future__ import annotations

from django.db.backends.postgresql import base

from mailhost import dbcursor


class DatabaseWrapper(base.DatabaseWrapper):
    def make_cursor(self, cursor):
        return dbcursor.CursorWrapper(cursor, self)

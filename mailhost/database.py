"""Database errors an operator can fix, told in one line instead of a traceback.

`manage.py` turns these into `mailhost: <what to do>`: a database without Mailhost's tables
(a provisioning command run before the first `migrate`, or from a shell whose
MAILHOST_DATA_DIR / DATABASE_URL differ from the server's), and a database that cannot be
reached.
"""

from __future__ import annotations

from django.conf import settings
from django.db import OperationalError, ProgrammingError

NO_TABLES = (
    "the database has no tables yet: run `manage.py migrate` or start `manage.py runmail`"
    " once, with the same MAILHOST_DATA_DIR and DATABASE_URL as the server"
)
# SQLSTATE undefined_table, undefined_column (PostgreSQL); SQLite says it in words.
_MISSING_SQLSTATES = {"42P01", "42703"}
_MISSING_WORDS = ("no such table", "no such column")


class DatabaseNotReady(Exception):
    """The database lacks the schema this code needs; the message says what to do."""


def require_schema() -> None:
    """Refuse to start a listener or worker on a database without Mailhost's tables, or with
    migrations of this code not applied: every session would fail on its first query."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except (OperationalError, ProgrammingError) as exc:
        message = operator_message(exc)
        if message is None:
            raise
        raise DatabaseNotReady(message) from None
    finally:
        connection.close()  # the listeners' threads open their own
    if not plan:
        return
    if not executor.loader.applied_migrations:
        raise DatabaseNotReady(f"{NO_TABLES} (this command used {database_label()})")
    raise DatabaseNotReady(
        f"the database schema is behind this code ({len(plan)} migration(s) not applied):"
        f" run `manage.py migrate` (this command used {database_label()})"
    )


def operator_message(exc: BaseException) -> str | None:
    """One line saying what to do about `exc`, or None when it is not the operator's to fix."""
    if isinstance(exc, DatabaseNotReady):
        return str(exc)
    if not isinstance(exc, OperationalError | ProgrammingError):
        return None
    cause = exc.__cause__
    text = str(exc).lower()
    if getattr(cause, "sqlstate", None) in _MISSING_SQLSTATES or text.startswith(_MISSING_WORDS):
        return f"{NO_TABLES} (this command used {database_label()}; {exc})"
    if text.startswith(("connection failed", "could not connect", "unable to open database")):
        first_line = str(exc).strip().splitlines()[0]
        return f"cannot open {database_label()}: {first_line}"
    return None


def database_label() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"the SQLite file {db['NAME']}"
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"the database {db['NAME']!r} on {host}{port}"


def without_like_index(table: str, column: str):  # noqa: ANN201
    """A migration operation that drops the varchar_pattern_ops twin Django makes on
    PostgreSQL for a unique or indexed CharField (for LIKE 'x%'), where no query asks that of
    the column and every row written pays for it; backwards, it is made again. Nothing on
    SQLite, which has no twin. The model is unchanged: Django's schema editor drops the twin
    with IF EXISTS, should the field ever be altered."""
    from django.db import migrations

    def name(schema_editor) -> str:  # noqa: ANN001
        return schema_editor._create_index_name(table, [column], suffix="_like")

    def forwards(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name(schema_editor)}"')

    def backwards(apps, schema_editor) -> None:  # noqa: ANN001
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name(schema_editor)}"'
                f' ON "{table}" ("{column}" varchar_pattern_ops)'
            )

    return migrations.RunPython(forwards, backwards)

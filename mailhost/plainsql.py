"""Plain statements for the hot paths, with model instances read the ORM's way.

Building a query through the ORM costs several times running it (the delivery job's claim
spent more CPU compiling its SELECT than SQLite spent on it). A hot path writes its statement
once, as text, and reads the rows with `Columns`: the select list of a model's concrete fields
under a table alias, and the instances built from a row's slice as the ORM builds them (the
backend's converters applied: SQLite's datetimes and booleans come back as text and integers).
The text and the converters are made on first use, for the one database a process uses.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import (
    AutoField,
    BigAutoField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    Field,
    ForeignKey,
    IntegerField,
    Model,
    TextField,
)
from django.db.models.base import ModelState
from django.db.models.constants import OnConflict
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

T = TypeVar("T")


@dataclass(frozen=True)
class Read(Generic[T]):
    """A plain SELECT (sql None: nothing to ask) and what makes its answer of its rows.
    Reads that do not depend on one another's answers go together (reads_together).

    `columns`: the width of its select list, given by a read none of whose columns the SQLite
    driver converts by their declared type (Django registers bool, date, time, datetime and
    timestamp converters): on SQLite selects_together puts such reads in one statement, where
    a column's declared type would be the first read's (a compound SELECT's)."""

    sql: str | None
    params: Sequence[Any]
    answer: Callable[[list[tuple]], T]
    columns: int | None = None

    def run(self) -> T:
        return reads_together([self])[0]


def reads_together(reads: Sequence[Read]) -> list:
    """Each read's answer, in their order; the statements prepared (prepared_cursor) and sent
    together: one round trip on PostgreSQL (statements_together), one after the other on
    SQLite."""
    asked = [read for read in reads if read.sql is not None]
    db = connections[DEFAULT_DB_ALIAS]
    with contextlib.ExitStack() as stack:
        cursors = [stack.enter_context(db.prepared_cursor()) for _ in asked]
        with db.statements_together() if len(asked) > 1 else contextlib.nullcontext():
            for cursor, read in zip(cursors, asked, strict=True):
                cursor.execute(read.sql, read.params)
        rows = [cursor.fetchall() for cursor in cursors]
    return _answers(reads, rows)


def selects_together(reads: Sequence[Read]) -> list:
    """reads_together for reads that are each one plain SELECT (no locking clause, no ORDER BY
    that their answer needs), outside a transaction's first statements: on PostgreSQL all of
    them one prepared statement, each read's rows an array of records (`SELECT ARRAY(SELECT
    ROW(q.*) FROM (read) q), ...`, rows in binary, each field by its own type), where
    reads_together's pipeline costs psycopg's Python about 60 us a statement: port 25's three
    reads (the sender lists, the spam facts, the Sieve scripts) 180-215 -> 95-120 us of CPU in
    Python, loop of 2000 alternated; bench/profile_server.py smtp --postgres --callgrind 200,
    1 KB: 5.12 -> 4.83 M instructions a message. On SQLite, reads that each give their
    `columns` are one statement too (_in_one_statement), within its parameter limit. Elsewhere
    (other reads on SQLite, or inside an atomic block on PostgreSQL, whose BEGIN goes with its first statements
    together) reads_together."""
    asked = [read for read in reads if read.sql is not None]
    db = connections[DEFAULT_DB_ALIAS]
    if (
        len(asked) > 1
        and db.vendor == "sqlite"
        and all(read.columns for read in asked)
        and sum(len(read.params) for read in asked) <= db.features.max_query_params
    ):
        return _answers(reads, _in_one_statement(db, asked))
    if len(asked) < 2 or db.vendor != "postgresql" or db.in_atomic_block:
        return reads_together(reads)
    sql = "SELECT " + ", ".join(f"ARRAY(SELECT ROW(q.*) FROM ({read.sql}) q)" for read in asked)
    with db.prepared_cursor(binary=True) as cursor:
        cursor.execute(sql, [param for read in asked for param in read.params])
        return _answers(reads, cursor.fetchone())


def _answers(reads: Sequence[Read], rows: Sequence[list[tuple]]) -> list:
    """Each read's answer of its rows, `rows` holding those of the reads that ask, in order."""
    found = iter(rows)
    return [read.answer([] if read.sql is None else next(found)) for read in reads]


def _in_one_statement(db: Any, reads: Sequence[Read]) -> list[list[tuple]]:  # noqa: ANN401
    """Each read's rows, asked on SQLite by one compound SELECT: `SELECT i, *` of read i, its
    rows padded with NULLs to the widest read's, UNION ALL'd in order (SQLite gives a UNION
    ALL's rows arm by arm, each arm's as its SELECT alone would). Port 25's three reads
    before its transaction were three statements, each its cursor, its execution through
    Django's wrappers and its read transaction of the WAL: spam.sender_facts with the Sieve
    scripts' read, 416 k instructions a call in three statements, 297 k in one."""
    with db.prepared_cursor() as cursor:
        cursor.execute(
            _compound_select(tuple((read.sql, read.columns) for read in reads)),
            [param for read in reads for param in read.params],
        )
        found = cursor.fetchall()
    rows: list[list[tuple]] = [[] for _ in reads]
    for row in found:
        index = row[0]
        rows[index].append(row[1 : 1 + reads[index].columns])
    return rows


# The statements of a few lists of reads' texts (port 25's verdict's reads differ by the number
# of mailboxes and of the sender's list patterns).
@functools.lru_cache(maxsize=256)
def _compound_select(reads: tuple[tuple[str, int], ...]) -> str:
    """_in_one_statement's statement for these (read's text, its width)s."""
    width = max(columns for _sql, columns in reads)
    return " UNION ALL ".join(
        f"SELECT {index}, *{', NULL' * (width - columns)} FROM ({sql})"
        for index, (sql, columns) in enumerate(reads)
    )


class Columns:
    """The concrete fields of `model` (or only those named in `names`) under the SQL alias
    `alias`."""

    def __init__(self, model: type[Model], alias: str, names: Sequence[str] = ()) -> None:
        self.model = model
        self.alias = alias
        meta = model._meta
        self.fields = [meta.get_field(n) for n in names] if names else list(meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self._sql: str | None = None
        self._converters: list[tuple[int, Any, list]] | None = None

    def __len__(self) -> int:
        return len(self.fields)

    @property
    def table(self) -> str:
        """`"table" alias`, for a FROM or JOIN clause."""
        return f"{connection.ops.quote_name(self.model._meta.db_table)} {self.alias}"

    @property
    def sql(self) -> str:
        """The select list: `alias."column", ...` in field order."""
        if self._sql is None:
            quote = connection.ops.quote_name
            self._sql = ", ".join(f"{self.alias}.{quote(f.column)}" for f in self.fields)
        return self._sql

    def _converters_of(self) -> list[tuple[int, Any, list]]:
        if self._converters is None:
            self._converters = converters_of([(f, self.alias) for f in self.fields])
        return self._converters

    def values(self, row: Sequence, start: int = 0) -> list:
        """row[start:start + len(self)] as the ORM reads them (the converters applied)."""
        return converted(list(row[start : start + len(self.fields)]), self._converters_of())

    def instance(self, row: Sequence, start: int = 0) -> Model:
        """The instance whose columns are row[start:start + len(self)] (with only some
        fields named, the others deferred)."""
        return from_db(self.model, DEFAULT_DB_ALIAS, self.attnames, self.values(row, start))


def from_db(model: type[Model], alias: str, attnames: Sequence[str], values: Sequence) -> Model:
    """`model.from_db(alias, attnames, values)` without Model.__init__, which for a row read
    whole only sets each field's attribute, sends pre_init and post_init, and makes the
    state: a third of the time (3 against 10 µs for an 18-field model), and a delivery claim
    makes three. A model of its own __init__ or from_db, or one whose init signals have
    receivers, is built by the ORM. A field not in `attnames` stays deferred (absent from
    the instance's __dict__, read on first access, as the ORM leaves it)."""
    if (
        model.from_db.__func__ is not _MODEL_FROM_DB
        or model.__init__ is not _MODEL_INIT
        or pre_init.has_listeners(model)
        or post_init.has_listeners(model)
    ):
        return model.from_db(alias, list(attnames), list(values))
    new = model.__new__(model)
    new.__dict__.update(zip(attnames, values))
    state = ModelState()
    state.adding = False
    state.db = alias
    new._state = state
    return new


_MODEL_FROM_DB = Model.from_db.__func__
_MODEL_INIT = Model.__init__


def converters_of(columns: Sequence[tuple[Any, str]]) -> list[tuple[int, Any, list]]:
    """(index, column, converters) of each (field, table alias) the backend or the field
    converts on reading, as the ORM finds them."""
    found = []
    for index, (field, alias) in enumerate(columns):
        column = field.get_col(alias)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            found.append((index, column, functions))
    return found


def converted(values: list, converters: list[tuple[int, Any, list]]) -> list:
    """`values` (a row's, in place) with `converters` (converters_of's) applied."""
    for index, column, functions in converters:
        value = values[index]
        for function in functions:
            value = function(value, column, connection)
        values[index] = value
    return values


class Insert:
    """INSERT of `model` instances in one plain statement, their values prepared as the ORM
    prepares them (pre_save: auto_now_add and the like; get_db_prep_save), optionally with the
    new primary keys set from RETURNING, or with the rows that break a unique constraint left
    out (`ignore_conflicts`, as bulk_create's)."""

    def __init__(
        self,
        model: type[Model],
        *,
        ignore_conflicts: bool = False,
        expressions: dict[str, str] | None = None,
    ) -> None:
        self.model = model
        self.columns = [f for f in model._meta.concrete_fields if not f.primary_key]
        # Columns whose value is an SQL expression written into the statement (a subquery
        # of the same statement's WITH), not a parameter: the rows leave them out.
        self.expressions = expressions or {}
        self.fields = [f for f in self.columns if f.attname not in self.expressions]
        self.on_conflict = OnConflict.IGNORE if ignore_conflicts else None
        self._head: str | None = None
        self._plan: list[tuple[Field, str, tuple[type, ...]]] | None = None
        self._adapts: list[Callable[[Any], Any] | None] | None = None
        self._defaults: list[Any] | None = None
        self._texts: dict[tuple[int, bool], str] = {}

    def _statement(self, count: int, returning: bool) -> str:
        """The statement's text for `count` rows, made once per count (a submission's rows
        are one or a few at a time)."""
        key = (count, returning)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = self._statement_text(count, returning)
        return text

    def _statement_text(self, count: int, returning: bool) -> str:
        ops = connection.ops
        if self._head is None:
            columns = ", ".join(ops.quote_name(f.column) for f in self.columns)
            table = ops.quote_name(self.model._meta.db_table)
            self._head = f"{ops.insert_statement(on_conflict=self.on_conflict)} {table} ({columns})"
        marks = "(" + ", ".join(self.expressions.get(f.attname, "%s") for f in self.columns) + ")"
        tail = ops.on_conflict_suffix_sql(self.fields, self.on_conflict, None, None)
        if returning:
            tail += f" RETURNING {ops.quote_name(self.model._meta.pk.column)}"
        return f"{self._head} VALUES {', '.join([marks] * count)} {tail}".rstrip()

    def __call__(self, instances: Sequence[Model], *, returning: bool = False) -> None:
        if not instances:
            return
        if returning and self.on_conflict is not None:
            raise ValueError("RETURNING leaves out the ignored rows: their keys are unknown")
        db = connections[DEFAULT_DB_ALIAS]  # once, not a proxy hop a read
        if self._plan is None:
            self._plan = [(f, f.attname, _passed_as_is(f, db)) for f in self.fields]
        params = []
        for instance in instances:
            values = instance.__dict__
            for field, attname, as_is in self._plan:
                value = values.get(attname, _UNSET)
                if type(value) not in as_is:
                    value = field.get_db_prep_save(field.pre_save(instance, True), db)
                params.append(value)
        with db.cursor() as cursor:
            cursor.execute(self._statement(len(instances), returning), params)
            ids = [row[0] for row in cursor.fetchall()] if returning else []
        for instance, pk in zip(instances, ids, strict=False):
            instance.pk = pk
        for instance in instances:
            instance._state.adding = False
            instance._state.db = db.alias

    def values(self, rows: Sequence[dict[str, Any]], *, returning: bool = False) -> list[int]:
        """INSERT of rows given as {attname: value} without model instances (the ORM's
        __init__ costs about 10 us a row, more than the statement): a field left out takes
        its default as the ORM would (auto_now and auto_now_add: the time of this call).
        Returns the new primary keys with `returning`."""
        if not rows:
            return []
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(*self.statement(rows, returning=returning))
            return [row[0] for row in cursor.fetchall()] if returning else []

    def statement(
        self, rows: Sequence[dict[str, Any]], *, returning: bool = False
    ) -> tuple[str, list]:
        """The text and parameters of `values`' INSERT of `rows` (at least one), for a
        statement that holds it (a WITH of several INSERTs: one round trip)."""
        if returning and self.on_conflict is not None:
            raise ValueError("RETURNING leaves out the ignored rows: their keys are unknown")
        if self._defaults is None:
            self._defaults = [_default_of(f) for f in self.fields]
        db = connections[DEFAULT_DB_ALIAS]  # once, not a proxy hop a read
        if self._plan is None:
            self._plan = [(f, f.attname, _passed_as_is(f, db)) for f in self.fields]
        if self._adapts is None:
            self._adapts = [_datetime_adapter(f, db) for f in self.fields]
        now = timezone.now()
        stamps: dict[Field, Any] = {}  # `now` as each auto_now(_add) field sends it
        params = []
        for row in rows:
            for (field, attname, as_is), default, adapt in zip(
                self._plan, self._defaults, self._adapts
            ):
                value = row.get(attname, _UNSET)
                if value is _UNSET:
                    if default is _NOW:
                        value = stamps.get(field, _UNSET)
                        if value is _UNSET:
                            value = stamps[field] = _prepared(field, now, db, adapt)
                    elif default is _CALLED:
                        value = field.get_db_prep_save(field.get_default(), db)
                    else:
                        value = default
                elif type(value) not in as_is:
                    value = _prepared(field, value, db, adapt)
                params.append(value)
        return self._statement(len(rows), returning), params


_UNSET = object()
_NONE = type(None)
# pre_save methods that return the attribute unless auto_now or auto_now_add is set.
_PLAIN_PRE_SAVES = (Field.pre_save, DateField.pre_save, DateTimeField.pre_save)
_NOW = object()  # auto_now, auto_now_add: the time of the INSERT
_CALLED = object()  # a callable default: called for each row


def _default_of(field: Field) -> Any:
    """What Insert.values sends for `field` when a row leaves it out: its prepared default,
    _NOW or _CALLED. A field that fills itself some other way (a custom pre_save) must be
    given."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return _NOW
    if type(field).pre_save not in _PLAIN_PRE_SAVES:
        raise ValueError(f"{field} fills itself in pre_save: give it a value")
    if field.has_default() and callable(field.default):
        return _CALLED
    return field.get_db_prep_save(field.get_default(), connection)


def _prepared(field: Field, value: Any, db, adapt: Callable[[Any], Any] | None) -> Any:  # noqa: ANN001
    """field.get_db_prep_save(value, db), with an aware datetime of a DateTimeField handed to
    the backend's adapt_datetimefield_value at once (_datetime_adapter)."""
    if adapt is not None and type(value) is datetime.datetime and value.utcoffset() is not None:
        return adapt(value)
    return field.get_db_prep_save(value, db)


def _datetime_adapter(field: Field, connection) -> Callable[[Any], Any] | None:  # noqa: ANN001
    """The backend's adapt_datetimefield_value for a DateTimeField whose preparation is
    Django's own, else None. For an aware datetime (a naive one is warned about and made
    aware first) get_db_prep_save is DateTimeField.get_db_prep_value, whose get_prep_value
    hands the value back unchanged (to_python keeps a datetime; Field's checks a lazy
    object): about 10,000 instructions a value through those calls, three or four values a
    spooled message, as many a delivery's results."""
    kind = type(field)
    if not isinstance(field, DateTimeField) or (
        kind.get_db_prep_save,
        kind.get_db_prep_value,
        kind.get_prep_value,
        kind.to_python,
    ) != (
        Field.get_db_prep_save,
        DateTimeField.get_db_prep_value,
        DateTimeField.get_prep_value,
        DateTimeField.to_python,
    ):
        return None
    return connection.ops.adapt_datetimefield_value


def _passed_as_is(field: Field, connection) -> tuple[type, ...]:  # noqa: ANN001
    """The exact types of value that `field` sends to `connection`'s database unchanged, so
    that the INSERT may take them without the ORM's preparation (pre_save and
    get_db_prep_save: about 2.5 us a field, 78 us for a spooled message's two rows): strings
    of a CharField or TextField, booleans of a BooleanField, integers of a foreign key to an
    integer key (validate_autopk_value returns them as they are) or of an integer field where
    the backend's adapt_integerfield_value does (SQLite's; PostgreSQL's wraps them in
    psycopg's Int2/Int4/Int8), and None of any of those. () for a field whose own
    preparation is kept (dates, auto_now, a custom field)."""
    kind = type(field)
    if kind.pre_save is not Field.pre_save:
        return ()
    if isinstance(field, ForeignKey):
        target = field.target_field
        if isinstance(target, (AutoField, BigAutoField)) and type(target).get_db_prep_value in (
            AutoField.get_db_prep_value,
            BigAutoField.get_db_prep_value,
        ):
            probe = 2**40
            if connection.ops.validate_autopk_value(probe) is probe:
                return (int, _NONE)
        return ()
    if kind.get_db_prep_save is not Field.get_db_prep_save:
        return ()
    prepares = (kind.get_prep_value, kind.get_db_prep_value)
    if prepares in (
        (CharField.get_prep_value, Field.get_db_prep_value),
        (TextField.get_prep_value, Field.get_db_prep_value),
    ):
        return (str, _NONE)
    if prepares == (BooleanField.get_prep_value, Field.get_db_prep_value):
        return (bool, _NONE)
    if prepares == (IntegerField.get_prep_value, IntegerField.get_db_prep_value):
        probe = 2**40
        if connection.ops.adapt_integerfield_value(probe, field.get_internal_type()) is probe:
            return (int, _NONE)
    return ()

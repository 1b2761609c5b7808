"""Database access shared by every SQL source: engines, URLs and the dialect-aware SQL pieces.

Identifiers come only from the validated inventory and are quoted by the dialect; values are
always bound parameters. Calendar arithmetic runs in the database (``timestamp + interval`` on
PostgreSQL and MariaDB, a registered function on SQLite that calls :func:`add_period`), so every
dialect decides exactly as :mod:`lethe.periods` does.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from sqlalchemy import Boolean, DateTime, Integer, String, and_, any_, bindparam, create_engine, event, func, or_, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from lethe.errors import ConnectionNotConfigured
from lethe.periods import Period, add_period, to_utc_naive

__all__ = ["ConnectionNotConfigured"]  # re-exported: callers catch it from here

_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}

# The format SQLAlchemy's DateTime type stores on SQLite; the SQLite functions below answer in it
# so that string comparison with bound datetimes is exact.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


# Every session Lethe opens works in UTC (see make_engine).
_SESSION_UTC = {
    # JIT off: compiling a batch's statement costs more than running it (Lethe's queries are short).
    "postgresql": "SET TIME ZONE 'UTC'; SET jit = off",
    "mysql": "SET time_zone = '+00:00'",
}


def url_from_fields(
    conn_type: str,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
) -> URL:
    """A SQLAlchemy URL from an Airflow connection's fields (for SQLite the schema is the path)."""
    driver = _DRIVERS.get((conn_type or "").lower())
    if not driver:
        raise ConnectionNotConfigured(f"connection type {conn_type!r} is not a supported SQL database")
    if driver == "sqlite":
        return URL.create("sqlite", database=schema or host)
    return URL.create(
        driver,
        username=login or None,
        password=password or None,
        host=host or None,
        port=port or None,
        database=schema or None,
    )


def normalise_url(url: str | URL) -> URL:
    """Accept plain ``postgresql://`` / ``mysql://`` URIs and pick the project's drivers."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend in _DRIVERS and "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_DRIVERS[backend])
    return parsed


def _connection_from_env(conn_id: str) -> str | dict:
    """``AIRFLOW_CONN_<ID>`` as Airflow reads it: a URI, or a JSON object of fields.

    Not set: the embedded default's connection when ``make demo`` wrote one (:mod:`lethe.embedded`).
    """
    from lethe.embedded import default_connection

    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip() or default_connection(conn_id) or ""
    if not raw:
        raise ConnectionNotConfigured(
            f"connection {conn_id!r} is not set (AIRFLOW_CONN_{conn_id.upper()}), "
            "and there is no embedded default (make demo writes one)"
        )
    return json.loads(raw) if raw.startswith("{") else raw


def connection_url(conn_id: str) -> URL:
    """Resolve a connection id from ``AIRFLOW_CONN_<ID>`` without Airflow (CLI, tests)."""
    conn = _connection_from_env(conn_id)
    if isinstance(conn, dict):
        return url_from_fields(
            conn.get("conn_type", ""),
            conn.get("host"),
            conn.get("login"),
            conn.get("password"),
            conn.get("port"),
            conn.get("schema"),
        )
    return normalise_url(conn)


def connection_path(conn_id: str) -> str:
    """The folder of a file-system connection from ``AIRFLOW_CONN_<ID>`` (JSON, ``extra.path``)."""
    conn = _connection_from_env(conn_id)
    if isinstance(conn, dict):
        extra = conn.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        path = extra.get("path") or conn.get("host")
    else:
        path = make_url(conn).database if "://" in conn else conn
    if not path:
        raise ConnectionNotConfigured(f"connection {conn_id!r} names no folder (extra.path)")
    return path


def _sqlite_timestamp(value) -> datetime | None:
    """A SQLite date or timestamp value, or None when it is not one (SQLite does not type-check):
    such a row is never due, and the rule's check names it before anything changes."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return to_utc_naive(str(value))
    except (TypeError, ValueError):
        return None


def _sqlite_add_period(value, months, days):
    moment = _sqlite_timestamp(value)
    if moment is None:
        return None
    return add_period(moment, Period(months=months, days=days)).strftime(_SQLITE_DATETIME)


def _sqlite_normalise_timestamp(value):
    moment = _sqlite_timestamp(value)
    return None if moment is None else moment.strftime(_SQLITE_DATETIME)


def make_engine(url: str | URL, *, writes: bool = True) -> Engine:
    """An engine for any supported database.

    PostgreSQL and MariaDB sessions work in UTC and at READ COMMITTED.
    On SQLite every transaction takes the write lock at BEGIN (``BEGIN IMMEDIATE``): concurrent
    tasks then wait for each other (up to the 60 s timeout) instead of failing when a reading
    transaction tries to become a writing one while another task writes. ``writes=False``: an
    engine that only reads (validation), whose transactions take no lock until they read.
    """
    url = normalise_url(url)
    kwargs: dict = {"future": True}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}
    else:
        kwargs["pool_pre_ping"] = True
    if url.get_backend_name() == "postgresql":
        # No server-side prepared statements: a batch's statement repeats with new keys, and after
        # five runs psycopg would prepare it and PostgreSQL could settle on a generic plan that
        # scans a whole table for a handful of keys.
        kwargs["connect_args"] = {"prepare_threshold": None}
    if url.get_backend_name() == "mysql":
        # As PostgreSQL by default: no gap locks, so concurrent rules that stage and drain the
        # same outbox do not deadlock on each other's keys.
        kwargs["isolation_level"] = "READ COMMITTED"
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() in _SESSION_UTC:
        statement = _SESSION_UTC[url.get_backend_name()]

        @event.listens_for(engine, "connect")
        def _session_in_utc(dbapi_connection, _record):
            # Deadlines are instants in UTC whatever the server's or database's time zone: a
            # `timestamptz` or MariaDB `TIMESTAMP` is read, and a naive as-of is compared, in UTC.
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()
            dbapi_connection.commit()

    if url.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
            dbapi_connection.create_function("lethe_add_period", 3, _sqlite_add_period, deterministic=True)
            dbapi_connection.create_function("lethe_timestamp", 1, _sqlite_normalise_timestamp, deterministic=True)
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
            # Deleted and overwritten content is zeroed on disk, not left in free pages, so a
            # deleted address cannot be read back from the file.
            dbapi_connection.execute("PRAGMA secure_delete=ON")

        if writes:

            @event.listens_for(engine, "begin")
            def _on_begin(connection):
                connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def schema_change(engine: Engine) -> Iterator[Connection]:
    """A transaction holding a database-wide lock for Lethe's own DDL.

    Several tasks may start at once against a fresh database and each create the audit or outbox
    tables; without the lock two ``CREATE TABLE`` statements race and one fails.
    """
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE already serialises
        backend = engine.dialect.name
        if backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        elif backend == "mysql":
            conn.execute(text("SELECT GET_LOCK(:name, 120)"), {"name": "lethe_schema"})
        try:
            yield conn
        finally:
            if backend == "mysql":
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": "lethe_schema"})


def bulk_insert(conn: Connection, table, rows: list[dict]) -> None:
    """Insert many rows in the caller's transaction, the fastest way each back end offers.

    PostgreSQL: ``COPY ... FROM STDIN`` on the same connection (several times faster than one
    INSERT per row, which is what an executemany amounts to with psycopg). MariaDB and SQLite:
    an executemany, which PyMySQL sends as multi-row INSERTs and SQLite runs in process.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    preparer = conn.dialect.identifier_preparer
    # The source's schema (schema_translate_map) applies here as it does to compiled statements.
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    name = (preparer.quote_schema(schema) + "." if schema else "") + preparer.quote(table.name)
    columns = list(rows[0])
    statement = f"COPY {name} ({', '.join(preparer.quote(c) for c in columns)}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    finally:
        cursor.close()


def drop_temporary(conn: Connection, table) -> None:
    """Drop a temporary table of this session, never a permanent table of the same name."""
    name = conn.dialect.identifier_preparer.quote(table.name)
    qualified = {"postgresql": f"DROP TABLE pg_temp.{name}", "mysql": f"DROP TEMPORARY TABLE {name}"}
    conn.exec_driver_sql(qualified.get(conn.dialect.name, f"DROP TABLE temp.{name}"))


_SCHEMA_LOCK_KEY = 0x1E7E  # any constant: the advisory lock Lethe's DDL takes on PostgreSQL


# --------------------------------------------------------------------------- SQL constructs


class add_period_sql(FunctionElement):
    """``expr + period`` in the database, clamped to month ends like :func:`add_period`."""

    type = DateTime()
    inherit_cache = True
    name = "lethe_add_period"

    def __init__(self, expr, period: Period):
        super().__init__(
            expr, bindparam(None, period.months, type_=Integer), bindparam(None, period.days, type_=Integer)
        )


@compiles(add_period_sql)
def _add_period_default(element, compiler, **kw):
    expr, months, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"lethe_add_period({expr}, {months}, {days})"


@compiles(add_period_sql, "postgresql")
def _add_period_pg(element, compiler, **kw):
    expr, months, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({expr} AS TIMESTAMP) + make_interval(0, CAST({months} AS INTEGER), 0, CAST({days} AS INTEGER)))"


@compiles(add_period_sql, "mysql")
def _add_period_mysql(element, compiler, **kw):
    expr, months, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"DATE_ADD(DATE_ADD(CAST({expr} AS DATETIME(6)), INTERVAL {months} MONTH), INTERVAL {days} DAY)"


# The text forms of a timestamp every back end reads exactly: ISO 8601 date, optional time with
# optional fraction, optional ``Z`` or ``+HH:MM`` offset. A row whose trigger is stored as text in
# any other form is quarantined (see :mod:`lethe.sources.sql.actions`). On PostgreSQL a date that
# has this form but is not in the calendar (30 February) still stops the query with an error.
TEXT_TIMESTAMP = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)


class timestamp_sql(FunctionElement):
    """A date or timestamp column as a comparable timestamp (SQLite stores text in many forms)."""

    type = DateTime()
    inherit_cache = True
    name = "lethe_timestamp"


@compiles(timestamp_sql)
def _timestamp_default(element, compiler, **kw):
    return f"lethe_timestamp({compiler.process(element.clauses, **kw)})"


@compiles(timestamp_sql, "postgresql")
def _timestamp_pg(element, compiler, **kw):
    # The UTC wall time of the value, independent of the session's time zone: a `timestamptz` is
    # converted explicitly; text is read as `timestamptz` so that an offset in it counts (text
    # without an offset is UTC); `timestamp` and `date` are UTC already.
    expr = compiler.process(element.clauses, **kw)
    value_type = element.clauses.clauses[0].type
    if isinstance(value_type, DateTime) and value_type.timezone:
        return f"({expr} AT TIME ZONE 'UTC')"
    if isinstance(value_type, String):
        # Text that is not a date reads as NULL (it is quarantined before the rule acts), never
        # as an error that stops the whole query.
        pattern = compiler.process(bindparam(None, TEXT_TIMESTAMP, type_=String), **kw)
        return f"(CASE WHEN {expr} ~ {pattern} THEN (CAST({expr} AS TIMESTAMPTZ) AT TIME ZONE 'UTC') END)"
    return f"CAST({expr} AS TIMESTAMP)"


@compiles(timestamp_sql, "mysql")
def _timestamp_mysql(element, compiler, **kw):
    expr = compiler.process(element.clauses, **kw)
    if isinstance(element.clauses.clauses[0].type, String):
        # MariaDB's CAST drops an offset in text silently ('...-05:00' would read five hours
        # early): convert it. Text in other forms reads as NULL and is quarantined (TEXT_TIMESTAMP).
        pattern = compiler.process(bindparam(None, TEXT_TIMESTAMP, type_=String), **kw)
        return (
            f"(CASE WHEN NOT {expr} REGEXP {pattern} THEN NULL "
            f"WHEN RIGHT({expr}, 1) = 'Z' "
            f"THEN CAST(SUBSTRING({expr}, 1, CHAR_LENGTH({expr}) - 1) AS DATETIME(6)) "
            f"WHEN {expr} REGEXP '[+-][0-9][0-9]:[0-9][0-9]$' THEN CONVERT_TZ(CAST(SUBSTRING({expr}, 1, "
            f"CHAR_LENGTH({expr}) - 6) AS DATETIME(6)), RIGHT({expr}, 6), '+00:00') "
            f"ELSE CAST({expr} AS DATETIME(6)) END)"
        )
    return f"CAST({expr} AS DATETIME(6))"


class greatest_sql(FunctionElement):
    """The greatest non-null argument (NULL only when all are NULL), on every dialect."""

    type = DateTime()
    inherit_cache = True
    name = "greatest"


@compiles(greatest_sql, "postgresql")
def _greatest_pg(element, compiler, **kw):
    # PostgreSQL's GREATEST already skips NULLs: each argument appears once.
    return f"GREATEST({', '.join(compiler.process(c, **kw) for c in element.clauses)})"


@compiles(greatest_sql)
def _greatest_default(element, compiler, **kw):
    args = [compiler.process(c, **kw) for c in element.clauses]
    if len(args) == 1:
        return args[0]
    # SQLite's max() and MariaDB's GREATEST() return NULL when any argument is NULL: coalesce
    # every argument with all the others so that NULLs are skipped.
    guarded = [f"COALESCE({', '.join([a] + args[:i] + args[i + 1 :])})" for i, a in enumerate(args)]
    fn = "max" if compiler.dialect.name == "sqlite" else "GREATEST"
    return f"{fn}({', '.join(guarded)})"


class keys_in(ColumnElement):
    """``column IN (keys)`` for a batch of keys; on PostgreSQL ``column = ANY(:array)``.

    A batch holds thousands of keys: as one array parameter PostgreSQL parses and plans the
    statement several times faster than with a parameter per key.
    """

    type = Boolean()
    inherit_cache = False  # the keys change every batch: nothing worth caching

    def __init__(self, column: ColumnElement, keys):
        self.column = column
        self.keys = list(keys)


@compiles(keys_in)
def _keys_in_default(element, compiler, **kw):
    return compiler.process(element.column.in_(element.keys), **kw)


@compiles(keys_in, "postgresql")
def _keys_in_pg(element, compiler, **kw):
    array = bindparam(None, element.keys, type_=ARRAY(element.column.type))
    return compiler.process(element.column == any_(array), **kw)


def due_by(trigger: ColumnElement, period: Period, as_of: datetime) -> ColumnElement:
    """``trigger + period <= as_of``: false when the trigger is NULL."""
    return add_period_sql(trigger, period) <= bindparam(None, as_of, type_=DateTime)


def normalised_email(column: ColumnElement) -> ColumnElement:
    """The SQL twin of :func:`lethe.subjects.normalise_email`: case and spaces ignored."""
    return func.lower(func.replace(func.trim(column), " ", ""), type_=String)


def not_a_timestamp(column: ColumnElement, dialect: str) -> ColumnElement | None:
    """Rows whose ``column`` holds something that is not a date; None when its type says it is.

    SQLite stores any text in any column, and a text column elsewhere may hold anything: such a
    value would read as no date at all and the row be judged by its other dates. Typed date and
    timestamp columns on PostgreSQL and MariaDB need no check. True or false, never unknown.
    """
    if dialect == "sqlite":
        return and_(column.is_not(None), timestamp_sql(column).is_(None))
    if isinstance(column.type, String):
        not_text_date = ~column.regexp_match(TEXT_TIMESTAMP)
        if dialect == "mysql":  # MariaDB reads 2026-02-30 as NULL, not an error
            not_text_date = or_(not_text_date, timestamp_sql(column).is_(None))
        return and_(column.is_not(None), not_text_date)
    return None


def later_than(value: ColumnElement, limit) -> ColumnElement:
    """``value > limit``, false (not unknown) when ``value`` is NULL."""
    return and_(value.is_not(None), value > limit)


def future_limit(as_of: datetime, tolerance: Period) -> ColumnElement:
    """Trigger dates after this are bad data: ``tolerance`` (``validation.future_tolerance``) past
    the as-of, as a bound parameter."""
    return bindparam(None, add_period(as_of, tolerance), type_=DateTime)

"""The servers trial databases live on, one class each: PostgreSQL, MariaDB, a folder of SQLite files.

A server lists its databases (or says whether it has one), says where one of them is, checks that
it answers, counts one's rows per table and drops one (a name the caller has validated:
:meth:`TrialDrop.refusal` is the last gate before a statement).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from sqlalchemy import event, func, inspect, select, table, text
from sqlalchemy.engine import URL, Connection, Engine

from lethe.db import make_engine
from lethe.errors import SchemaMismatch
from lethe.strict import IDENTIFIER

SQLITE_SUFFIX = ".sqlite"
# SQLite keeps these next to a database file; they go with it.
SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")


class TrialServer(ABC):
    """One trial server, reached through connection ``connection_id`` at ``url``."""

    backend: str

    def __init__(self, url: URL, connection_id: str, engine: Callable[[], Engine]):
        self.url = url
        self.connection_id = connection_id
        self._engine = engine  # the connection's own database (servers only), created on first use

    @staticmethod
    def for_url(url: URL, connection_id: str, engine: Callable[[], Engine]) -> "TrialServer":
        backend = url.get_backend_name()
        for cls in (SqliteFolder, PostgresServer, MariaDbServer):
            if cls.backend == backend:
                return cls(url, connection_id, engine)
        raise SchemaMismatch(
            f"connection {connection_id!r}: {backend} servers are not supported for trial "
            "databases. Nothing was changed."
        )

    def check(self) -> None:
        """The server answers (raises before anything changes)."""
        self.list_databases()

    def session(self) -> ContextManager[None]:
        """Within it, the steps on one database (look, count, drop) share one session of the server."""
        return nullcontext()

    @abstractmethod
    def list_databases(self) -> set[str]:
        """Every database on the server, as named there."""

    @abstractmethod
    def database_url(self, name: str) -> URL:
        """Where one database of the server is."""

    def exists(self, name: str) -> bool:
        """Whether connecting to ``name`` finds it (and creates nothing)."""
        return True

    def has(self, name: str) -> bool:
        """Whether :meth:`list_databases` would list ``name``, asked of that name alone."""
        if not isinstance(name, str) or "\x00" in name:  # no server names a database so
            return False
        return self._has(name)

    @abstractmethod
    def _has(self, name: str) -> bool: ...

    @abstractmethod
    def count_rows(self, name: str) -> dict[str, int | None]:
        """Rows per table of one database (its default schema), read only."""

    def own_names(self, urls: list[URL]) -> set[str]:
        """Which of the databases Lethe itself uses (``urls``) are on this server."""
        names = {self.url.database or ""}
        names |= {u.database for u in urls if u.get_backend_name() == self.backend and u.database}
        return names - {""}

    @abstractmethod
    def drop(self, name: str) -> None:
        """Drop one database the caller validated."""


class SqliteFolder(TrialServer):
    """A folder with one ``<name>.sqlite`` file per trial database."""

    backend = "sqlite"

    @property
    def folder(self) -> Path:
        return Path(self.url.database or "")

    def path(self, name: str) -> Path:
        return self.folder / f"{name}{SQLITE_SUFFIX}"

    def check(self) -> None:
        if not self.folder.is_dir():
            raise SchemaMismatch(
                f"connection {self.connection_id!r}: the trial folder {self.folder} does not "
                "exist. Nothing was changed."
            )
        super().check()

    def list_databases(self) -> set[str]:
        # A symbolic link is not a trial database: dropping it could not remove the data anyway.
        return {
            p.name[: -len(SQLITE_SUFFIX)]
            for p in self.folder.iterdir()
            if p.name.endswith(SQLITE_SUFFIX) and p.is_file() and not p.is_symlink()
        }

    def database_url(self, name: str) -> URL:
        return URL.create("sqlite", database=str(self.path(name)))

    def exists(self, name: str) -> bool:
        # Connecting to a missing file would create an empty one.
        return self.path(name).is_file()

    def _has(self, name: str) -> bool:
        if "/" in name:  # a file in another folder is no database of this one
            return False
        path = self.path(name)
        return path.is_file() and not path.is_symlink()

    def count_rows(self, name: str) -> dict[str, int | None]:
        if not self.exists(name):
            # Connecting would create an empty file; the next run sees it gone and decides again.
            raise FileNotFoundError(f"{name}{SQLITE_SUFFIX} went away before it was dropped")
        engine = make_engine(self.database_url(name))
        try:
            with engine.connect() as conn:
                return count_tables(conn, inspect(conn).get_table_names())
        finally:
            engine.dispose()  # no connection of ours may stay open on a file we remove

    def own_names(self, urls: list[URL]) -> set[str]:
        names = set()
        for url in urls:
            if url.get_backend_name() != self.backend or not url.database:
                continue
            path = Path(url.database).resolve()
            if path.parent == self.folder.resolve() and path.name.endswith(SQLITE_SUFFIX):
                names.add(path.name[: -len(SQLITE_SUFFIX)])
        return names

    def drop(self, name: str) -> None:
        """The file and its journal files (our engine on it was disposed after counting)."""
        path = self.path(name)
        if path.is_symlink():
            raise ValueError(f"refusing to drop {name!r}: {path} is a symbolic link")
        for companion in SQLITE_COMPANIONS:
            Path(f"{path}{companion}").unlink(missing_ok=True)
        path.unlink(missing_ok=True)


class _SqlServer(TrialServer):
    """A database server reached through the connection's own database."""

    list_query: str
    name_column: str
    _held: Connection | None = None

    @contextmanager
    def session(self) -> Iterator[None]:
        # Every statement of a database's steps is one of its own (autocommit, as the drop must
        # be): taking the session once saves a check-out, a ping and a rollback per step.
        if self._held is not None:
            yield
            return
        with self._autocommit() as conn:
            self._held = conn
            try:
                yield
            finally:
                self._held = None

    @contextmanager
    def _autocommit(self) -> Iterator[Connection]:
        """The held session, or a new autocommit one."""
        if self._held is not None:
            yield self._held
            return
        with self._engine().execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            yield conn

    def list_databases(self) -> set[str]:
        with self._autocommit() as conn:
            return {row[0] for row in conn.execute(text(self.list_query))}

    def _has(self, name: str) -> bool:
        with self._autocommit() as conn:
            found = conn.execute(text(f"{self.list_query} WHERE {self.name_column} = :name"), {"name": name})
            # MariaDB compares names without case: the name must come back exactly.
            return name in {row[0] for row in found}

    def database_url(self, name: str) -> URL:
        return self.url.set(database=name)

    def drop(self, name: str) -> None:
        with self._autocommit() as conn:
            self.drop_quoted(conn, name, conn.dialect.identifier_preparer.quote(name))

    @abstractmethod
    def drop_quoted(self, conn, name: str, quoted: str) -> None:
        """Drop ``name`` (``quoted`` by the dialect) on an autocommit connection."""


class PostgresServer(_SqlServer):
    backend = "postgresql"
    list_query = "SELECT datname FROM pg_database"
    name_column = "datname"
    SESSION_END_TIMEOUT = 2.0  # seconds to wait for our own session on a database to end before its drop

    def __init__(self, url: URL, connection_id: str, engine: Callable[[], Engine]):
        super().__init__(url, connection_id, engine)
        self._visits: Engine | None = None
        self._visiting = ""
        self._ending: dict[str, int] = {}  # database -> our closed session on it, maybe still exiting

    def _visit(self, name: str) -> Engine:
        """An engine whose next session is on the database ``name``.

        One engine serves every database of the server: its dialect is set up on its first
        session only, not once per database (an engine per database costs more than its session).
        """
        if self._visits is None:
            engine = make_engine(self.url)
            dialect = engine.dialect

            @event.listens_for(engine, "do_connect")
            def _to_the_visited_database(_dialect, _record, cargs, cparams):
                target_args, target_params = dialect.create_connect_args(self.database_url(self._visiting))
                cargs[:] = target_args
                cparams.clear()
                cparams.update(target_params)

            self._visits = engine
        self._visiting = name
        return self._visits

    def count_rows(self, name: str) -> dict[str, int | None]:
        """A session on the database itself (PostgreSQL reads no other database's tables)."""
        engine = self._visit(name)
        try:
            with engine.connect() as conn:
                session = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                counts = count_tables(conn, inspect(conn).get_table_names())
        finally:
            engine.dispose()  # closes the session: none of ours stays on a database being dropped
        self._ending[name] = session
        return counts

    def drop_quoted(self, conn, name: str, quoted: str) -> None:
        session = self._ending.pop(name, None)
        if session is not None:
            self._wait_for_session_end(conn, session)
        # FORCE ends other sessions on it (PostgreSQL 13+); otherwise the drop would fail.
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")

    def _wait_for_session_end(self, conn, session: int) -> None:
        """Return once the server process of our counting session on the database has gone.

        DROP DATABASE would otherwise find it still exiting and wait for it in steps of 100 ms,
        longer than the drop itself. Each look is a statement of its own (``conn`` autocommits),
        so it sees the activity view afresh.
        """
        deadline = time.monotonic() + self.SESSION_END_TIMEOUT
        while time.monotonic() < deadline:
            still_there = conn.execute(
                text("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = :pid)"), {"pid": session}
            ).scalar_one()
            if not still_there:
                return
            time.sleep(0.001)


class MariaDbServer(_SqlServer):
    backend = "mysql"
    list_query = "SELECT schema_name FROM information_schema.schemata"
    name_column = "schema_name"

    def count_rows(self, name: str) -> dict[str, int | None]:
        """On the server's own session, names qualified by the database: no session of its own."""
        with self._autocommit() as conn:
            return count_tables(conn, inspect(conn).get_table_names(schema=name), schema=name)

    def drop_quoted(self, conn, name: str, quoted: str) -> None:
        # information_schema compares names case-insensitively: match exactly in Python.
        sessions = conn.execute(text("SELECT id, db FROM information_schema.processlist WHERE id <> CONNECTION_ID()"))
        for session_id, db in sessions.all():
            if db == name:
                conn.exec_driver_sql(f"KILL CONNECTION {int(session_id)}")
        # A session we could not end must not block the task for MariaDB's default year.
        conn.exec_driver_sql("SET SESSION lock_wait_timeout = 120")
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")


def count_tables(conn: Connection, table_names: list[str], schema: str | None = None) -> dict[str, int | None]:
    """Rows per table, counted in one statement. The names come from the trial database, not the
    inventory: only plain names are counted, any other is listed without a count."""
    counts: dict[str, int | None] = {name: None for name in sorted(table_names)}
    plain = [name for name in counts if IDENTIFIER.fullmatch(name)]
    if plain:
        row = conn.execute(
            select(*(select(func.count()).select_from(table(name, schema=schema)).scalar_subquery() for name in plain))
        ).one()
        counts.update({name: int(n) for name, n in zip(plain, row, strict=True)})
    return counts

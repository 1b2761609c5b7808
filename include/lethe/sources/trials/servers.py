"""The servers trial databases live on, one class each: PostgreSQL, MariaDB, a folder of SQLite files.

A server lists its databases, says where one of them is, checks that it answers and drops one
(a name the caller has validated: :meth:`TrialDrop.refusal` is the last gate before a statement).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from lethe.errors import SchemaMismatch

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

    @abstractmethod
    def list_databases(self) -> set[str]:
        """Every database on the server, as named there."""

    @abstractmethod
    def database_url(self, name: str) -> URL:
        """Where one database of the server is."""

    def exists(self, name: str) -> bool:
        """Whether connecting to ``name`` finds it (and creates nothing)."""
        return True

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

    def list_databases(self) -> set[str]:
        with self._engine().connect() as conn:
            return {row[0] for row in conn.execute(text(self.list_query))}

    def database_url(self, name: str) -> URL:
        return self.url.set(database=name)

    def drop(self, name: str) -> None:
        server = self._engine().execution_options(isolation_level="AUTOCOMMIT")
        quoted = server.dialect.identifier_preparer.quote(name)
        with server.connect() as conn:
            self.drop_quoted(conn, name, quoted)

    @abstractmethod
    def drop_quoted(self, conn, name: str, quoted: str) -> None:
        """Drop ``name`` (``quoted`` by the dialect) on an autocommit connection."""


class PostgresServer(_SqlServer):
    backend = "postgresql"
    list_query = "SELECT datname FROM pg_database"

    def drop_quoted(self, conn, name: str, quoted: str) -> None:
        # FORCE ends other sessions on it (PostgreSQL 13+); otherwise the drop would fail.
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


class MariaDbServer(_SqlServer):
    backend = "mysql"
    list_query = "SELECT schema_name FROM information_schema.schemata"

    def drop_quoted(self, conn, name: str, quoted: str) -> None:
        # information_schema compares names case-insensitively: match exactly in Python.
        sessions = conn.execute(text("SELECT id, db FROM information_schema.processlist WHERE id <> CONNECTION_ID()"))
        for session_id, db in sessions.all():
            if db == name:
                conn.exec_driver_sql(f"KILL CONNECTION {int(session_id)}")
        # A session we could not end must not block the task for MariaDB's default year.
        conn.exec_driver_sql("SET SESSION lock_wait_timeout = 120")
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")

"""Shared fixtures: real SQLite, PostgreSQL and MariaDB databases, and demo estates on them.

Each test that needs a server database makes its own uniquely named database and drops it,
since the servers keep state between runs. Server URLs: ``LETHE_TEST_POSTGRES_URL`` and
``LETHE_TEST_MARIADB_URL`` (defaults: the servers on this machine). A server that does not answer
is skipped with the reason, unless ``LETHE_REQUIRE_SERVERS=1`` (CI), where it fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from lethe.db import make_engine
from lethe.runner import Engines, make_context

REPO = Path(__file__).resolve().parents[1]
SERVER_URLS = {
    "postgresql": os.environ.get("LETHE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("LETHE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql"),
}
BACKENDS = ["sqlite", "postgresql", "mariadb"]
TEST_KEY = "test-audit-key-0123456789abcdef"
_unreachable: dict[str, str] = {}


def _admin_engine(backend: str):
    url = make_url(SERVER_URLS[backend])
    if backend == "postgresql":
        url = url.set(query={**url.query, "connect_timeout": "5"})
    else:
        url = url.set(query={**url.query, "connect_timeout": "5"})
    return make_engine(url).execution_options(isolation_level="AUTOCOMMIT")


def require_server(backend: str) -> None:
    if backend == "sqlite":
        return
    if backend not in _unreachable:
        try:
            engine = _admin_engine(backend)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _unreachable[backend] = ""
        except Exception as exc:  # the reason is shown in the skip or failure
            _unreachable[backend] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    if _unreachable[backend]:
        message = (
            f"{backend} server at {make_url(SERVER_URLS[backend]).render_as_string(hide_password=True)}"
            f" does not answer ({_unreachable[backend]})"
        )
        if os.environ.get("LETHE_REQUIRE_SERVERS") == "1":
            pytest.fail(message + "; LETHE_REQUIRE_SERVERS=1 requires it")
        pytest.skip(message)


@dataclass
class Databases:
    """Makes uniquely named databases on one backend and drops them all at the end."""

    backend: str
    tmp_path: Path
    created: list[str] = field(default_factory=list)

    def new(self, label: str) -> str:
        name = f"lethe_t_{label}_{uuid.uuid4().hex[:10]}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_path / (name + '.sqlite')}"
        engine = _admin_engine(self.backend)
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        engine.dispose()
        self.created.append(name)
        return make_url(SERVER_URLS[self.backend]).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.backend == "sqlite" or not self.created:
            return
        engine = _admin_engine(self.backend)
        with engine.connect() as conn:
            for name in self.created:
                suffix = " WITH (FORCE)" if self.backend == "postgresql" else ""
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}{suffix}"))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    require_server(request.param)
    return request.param


@pytest.fixture
def databases(backend, tmp_path):
    dbs = Databases(backend, tmp_path)
    yield dbs
    dbs.drop_all()


@dataclass
class Estate:
    """Connection URLs by connection id, an engine cache over them, and a context maker."""

    urls: dict[str, str]
    engines: Engines

    def engine(self, conn_id: str):
        return self.engines(conn_id)

    def context(
        self,
        as_of: datetime,
        *,
        dry_run: bool = False,
        run_id: str = "test-run",
        batch_size: int = 1000,
        key: str = TEST_KEY,
        **kwargs,
    ):
        return make_context(
            run_id=run_id,
            dag_id="test_dag",
            task_id="test_task",
            as_of=as_of,
            dry_run=dry_run,
            key=key,
            engines=self.engines,
            batch_size=batch_size,
            **kwargs,
        )


@pytest.fixture
def estate(databases, tmp_path):
    urls = {conn_id: databases.new(conn_id.replace("lethe_", "")) for conn_id in ("crm", "marketing", "lethe_audit")}
    # C1 asks the trial server which sign-ups' databases are still there: an empty folder here
    # (tests of T1 point "trials" at a server of their own).
    (tmp_path / "no_trials").mkdir()
    urls["trials"] = f"sqlite:///{tmp_path / 'no_trials'}"
    engines = Engines(resolve=lambda conn_id: urls[conn_id])
    yield Estate(urls, engines)
    engines.dispose()


def airflow_environment(home: Path) -> dict[str, str]:
    """The environment of a fresh AIRFLOW_HOME on SQLite (migrated, with Lethe's pool)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LETHE_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "LETHE_RETRY_DELAY_SECONDS": "1",  # a failing task must not wait minutes to retry in a test
        # dag.test() cannot end a run of a DAG with a deadline alert (Airflow 3.3.2); the live
        # tests, where a scheduler evaluates deadlines, turn it back on.
        "LETHE_DEADLINE_ALERTS": "off",
        # Every source armed, as after `lethe arm`; tests of the unarmed state remove it.
        "AIRFLOW_VAR_LETHE_ARMED_SOURCES": '["crm", "marketing", "trials", "weblogs"]',
        "PYTHONPATH": str(REPO / "include") + os.pathsep + str(REPO / "tests"),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [airflow, "pools", "set", "lethe_trial_drops", "2", "trial drops"], env=env, check=True, capture_output=True
    )
    return env


@pytest.fixture
def smtp_server():
    """A local SMTP server on 127.0.0.1: ``.port``, and ``.messages`` received (email.message objects)."""
    import email
    import email.policy
    import socket
    from types import SimpleNamespace

    from aiosmtpd.controller import Controller

    class Collect:
        async def handle_DATA(self, server, session, envelope):
            received.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    received = SimpleNamespace(port=port, messages=[])
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    yield received
    controller.stop()


def wait_for(what: str, probe, timeout: float = 240, every: float = 2):
    """Poll ``probe`` until it returns something true (an HTTP error counts as not yet); fail after ``timeout`` s."""
    import time

    import requests

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except requests.RequestException as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


# The longest units of work first: pytest-xdist hands work out in collection order, so a long
# group (a live deployment; every test sharing a trial server) started last would keep one
# worker busy after the others are done.
LONG_GROUPS = ("live_cluster_celery", "live_cluster_local", "trial_servers")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        marker = item.get_closest_marker("xdist_group")
        group = (marker.args[0] if marker and marker.args else marker.kwargs.get("name")) if marker else None
        return LONG_GROUPS.index(group) if group in LONG_GROUPS else len(LONG_GROUPS)

    items.sort(key=rank)  # stable: within a rank, the files' own order

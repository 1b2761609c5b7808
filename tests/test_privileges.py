"""Least-privilege roles: generated from the inventory, run with the servers' own clients, held to.

Server tests build the reference estate as the administrator, run the committed scripts under
``deploy/roles`` with psql or the mariadb client (twice: they are idempotent), then connect as the
roles. Every database and role is named with a random suffix and dropped at the end, failure or
not: other tests use the same servers at the same time, and PostgreSQL roles are server-wide.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from faker import Faker
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from lethe import privileges
from lethe.audit import AuditTrail
from lethe.config import DEFAULT_INVENTORY, ConfigError, load_inventory
from lethe.db import make_engine
from lethe.demo import schema
from lethe.demo.seed import DemoSizes, seed_crm, seed_marketing
from lethe.demo.trials import create_trial_database
from lethe.errors import AuditStoreNotReady
from lethe.runner import Engines, make_context, run_rule

from conftest import REPO, SERVER_URLS, TEST_KEY, require_server

AS_OF = datetime(2026, 11, 26)
SMALL = DemoSizes(companies=40, contacts=300, subscribers=200, consents=200, web_events=400)
DIALECT = {"postgresql": "postgresql", "mariadb": "mariadb"}
DENIED = ("denied", "must be owner")


# --------------------------------------------------------------------------- from the inventory


def test_the_committed_scripts_are_the_generators_output():
    """deploy/roles never drifts from the inventory: `lethe policy roles --write` rewrites it."""
    generated = privileges.scripts(load_inventory())
    assert sorted(str(p) for p in generated) == sorted(
        f"deploy/roles/{d}/{n}.sql" for d in ("postgresql", "mariadb") for n in ("crm", "marketing", "trials", "audit")
    )
    for path, content in generated.items():
        assert (REPO / path).read_text() == content, f"{path} is stale: run `lethe policy roles --write`"


def _grants(needs, on):
    return {(g.privileges, g.tables, g.columns, g.rules) for g in needs.grants if g.on == on}


def test_what_each_role_needs_comes_from_the_inventory():
    inventory = load_inventory()
    crm = privileges.required(inventory, "crm")
    wanted = crm.wanted()
    # Deletes: C1's table and its dependents; nothing else is deleted from.
    assert {(t, r) for (p, on, t, c), r in wanted.items() if p == "DELETE" and on == "tables"} == {
        ("contacts", ("C1",)),
        ("interactions", ("C1",)),
        ("trial_signups", ("C1",)),
    }
    # Updates: exactly the personal-data columns K1 rewrites, column by column; no table-wide UPDATE.
    assert _grants(crm, "columns") == {
        (("UPDATE",), ("contacts",), ("email", "first_name", "job_title", "last_name", "phone"), ("K1",)),
        (("UPDATE",), ("interactions",), ("notes",), ("K1",)),
    }
    assert not [k for k in wanted if k[0] in ("UPDATE", "INSERT") and k[1] == "tables"]
    # Reads: every table the inventory names, the holds for every rule keyed on a person.
    assert {t for (p, on, t, c) in wanted if p == "SELECT" and on == "tables"} == set(inventory.sources["crm"].tables)
    assert wanted[("SELECT", "tables", "legal_holds", None)] == ("C1", "K1", "N1", "T1")
    assert wanted[("SELECT", "tables", "trial_signups", None)] == ("C1", "T1")
    assert {k[0] for k in wanted if k[1] == "outbox"} == {"CREATE", "SELECT", "INSERT", "DELETE"}

    marketing = privileges.required(inventory, "marketing").wanted()
    assert {(p, t) for (p, on, t, c) in marketing if p != "SELECT" and on == "tables"} == {
        ("INSERT", "suppression_list"),
        ("DELETE", "newsletter_subscribers"),
        ("DELETE", "web_events"),
        ("DELETE", "cookie_consents"),
    }
    audit = privileges.required(inventory, "audit").wanted()
    assert {(p, t) for (p, on, t, c) in audit} == {
        ("INSERT", "lethe_audit"),
        ("SELECT", "lethe_audit"),
        ("SELECT", "lethe_audit_head"),
        ("UPDATE", "lethe_audit_head"),
    }
    trials = privileges.required(inventory, "trials")
    assert trials.wanted() == {
        ("SELECT", "trial_databases", None, None): ("C1", "T1"),
        ("DROP", "trial_databases", None, None): ("T1",),
    }

    # Another inventory, other needs: nothing is hard-coded.
    data = inventory.sources["crm"].model_dump(by_alias=True, exclude_defaults=True)
    del data["tables"]["contacts"]["personal_data"]["job_title"]
    data["tables"]["contacts"]["dependents"] = [{"table": "interactions", "foreign_key": "contact_id"}]
    changed = inventory.model_copy(
        update={"sources": {**inventory.sources, "crm": type(inventory.sources["crm"]).model_validate(data)}}
    )
    wanted = privileges.required(changed, "crm").wanted()
    assert ("UPDATE", "columns", "contacts", "job_title") not in wanted
    assert ("DELETE", "tables", "trial_signups", None) not in wanted
    with pytest.raises(ConfigError, match="needs no SQL role"):
        privileges.required(inventory, "weblogs")


@pytest.mark.parametrize(
    ("pattern", "like"),
    [
        (r"^trial_[a-z0-9_]{1,56}$", "trial\\_%"),
        (r"^trial_ab12_[a-z0-9_]{1,40}$", "trial\\_ab12\\_%"),
        (r"^trials?_[a-z]+$", "trial%"),
        (r"^t+rial$", "t%"),
        (r"^x\_y[0-9]$", "x\\_y%"),
    ],
)
def test_the_grant_pattern_is_the_literal_prefix_of_the_name_pattern(pattern, like):
    assert privileges.like_pattern(pattern) == like


@pytest.mark.parametrize("pattern", [r"^[a-z]+_trial$", r"^(?i)trial_x$", r"^.*$", r"^trial_a|b$", r"^\w+$"])
def test_a_name_pattern_without_a_literal_prefix_is_refused(pattern):
    with pytest.raises(ConfigError, match="no literal prefix"):
        privileges.like_pattern(pattern)


def test_an_unknown_dialect_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"no privileges back end 'oracle' \(known: postgresql, mariadb\)"):
        privileges.backend("oracle")
    assert type(privileges.backend("mysql")) is privileges.MariaDB  # SQLAlchemy's name for it


def lethe(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "lethe.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_policy_roles_prints_one_script_or_all(tmp_path):
    one = lethe(dict(os.environ), "policy", "roles", "--dialect", "mariadb", "--source", "trials")
    assert one.returncode == 0 and one.stdout == (REPO / "deploy/roles/mariadb/trials.sql").read_text()
    every = lethe(dict(os.environ), "policy", "roles")
    assert every.returncode == 0 and every.stdout.count("-- ==> deploy/roles/") == 8
    bad = lethe(dict(os.environ), "policy", "roles", "--dialect", "oracle")
    assert bad.returncode == 2 and "known: postgresql, mariadb" in bad.stderr


def test_audit_init_and_sqlite_connections(tmp_path):
    """`lethe audit init` makes the chain once; SQLite files have no privileges to check."""
    env = {
        **os.environ,
        "LETHE_ESTATE_DIR": str(tmp_path / "no-estate"),
        "AIRFLOW_CONN_LETHE_AUDIT": f"sqlite:///{tmp_path / 'audit.sqlite'}",
        "AIRFLOW_CONN_CRM": f"sqlite:///{tmp_path / 'crm.sqlite'}",
        "AIRFLOW_CONN_MARKETING": f"sqlite:///{tmp_path / 'marketing.sqlite'}",
        "AIRFLOW_CONN_TRIALS": f"sqlite:///{tmp_path}",
        "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(tmp_path)}}),
    }
    made = lethe(env, "audit", "init")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == (
        "audit store ready: created table lethe_audit, table lethe_audit_head, index ix_lethe_audit_rule_action, "
        "head row, append-only guard"
    )
    again = lethe(env, "audit", "init")
    assert again.stdout.strip() == "audit store ready: nothing was missing"
    checked = lethe(env, "policy", "check")  # the empty CRM fails the rules' checks; privileges do not apply
    for conn_id in ("crm", "marketing", "trials", "lethe_audit"):
        assert f"privileges of connection {conn_id}: SQLite (files): privileges do not apply" in checked.stdout


# --------------------------------------------------------------------------- on the servers


class RoleEstate:
    """Databases and roles of one test on one server, made as the administrator, all dropped at the end."""

    def __init__(self, backend: str, tmp_path: Path):
        self.backend = backend
        self.tmp_path = tmp_path
        self.suffix = uuid.uuid4().hex[:8]
        self.admin = make_url(SERVER_URLS[backend])
        self.databases: list[str] = []
        self.roles: list[str] = []
        self.tag = f"{self.suffix}_"  # in the names of this test's trial databases
        self.crm = self.marketing = self.audit = ""
        self.role: dict[str, str] = {}  # crm, marketing, audit -> the role made by its script
        self.urls: dict[str, str] = {}  # connection id -> URL (as the roles)

    def name(self, label: str) -> str:
        return f"lethe_t_{label}_{self.suffix}"

    def admin_execute(self, *statements: str, database: str | None = None) -> None:
        engine = make_engine(self.admin.set(database=database or self.admin.database)).execution_options(
            isolation_level="AUTOCOMMIT"
        )
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def database(self, label: str) -> str:
        name = self.name(label)
        self.databases.append(name)
        self.admin_execute(f"CREATE DATABASE {name}")
        return name

    def url(self, database: str | None, user: str | None = None) -> str:
        # _replace, not set(): set() leaves a field alone when given None (no database, no password).
        url = self.admin._replace(database=database)
        if user:
            url = url._replace(username=user, password=None)
        return url.render_as_string(hide_password=False)

    def run_script(self, name: str, database: str | None, role: str, **variables: str) -> None:
        """The committed script, with the server's own client, as the administrator (twice)."""
        self.roles.append(role)
        path = REPO / "deploy" / "roles" / self.backend / f"{name}.sql"
        env = dict(os.environ)
        if self.backend == "postgresql":
            command = ["psql", "-X", "-q", "-h", self.admin.host, "-p", str(self.admin.port or 5432)]
            command += ["-U", self.admin.username, "-v", "ON_ERROR_STOP=1", "-d", database, "-v", f"role={role}"]
            for key, value in variables.items():
                command += ["-v", f"{key}={value}"]
            command += ["-f", str(path)]
            if self.admin.password:
                env["PGPASSWORD"] = self.admin.password
            stdin = None
        else:
            values = {"role": role, **({"db": database} if database else {}), "host": "%", **variables}
            init = "SET " + ", ".join(f"@{k}='{v}'" for k, v in values.items())
            command = ["mariadb", "-h", self.admin.host, "-P", str(self.admin.port or 3306), "-u", self.admin.username]
            if self.admin.password:
                command.append(f"-p{self.admin.password}")
            command.append(f"--init-command={init}")
            stdin = path.read_text()
        for _ in range(2):  # idempotent: the second run changes nothing and does not fail
            done = subprocess.run(command, input=stdin, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr

    def drop(self) -> None:
        for database in self.databases:
            force = " WITH (FORCE)" if self.backend == "postgresql" else ""
            self.admin_execute(f"DROP DATABASE IF EXISTS {database}{force}")
        if self.backend == "postgresql":
            # Privileges went with the databases; what remains on the server's own databases goes here.
            for role in dict.fromkeys(self.roles):
                if self._pg_role_exists(role):
                    self.admin_execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")
        else:
            for role in dict.fromkeys(self.roles):
                self.admin_execute(f"DROP USER IF EXISTS '{role}'@'%%'")  # %%: the driver formats the text

    def _pg_role_exists(self, role: str) -> bool:
        engine = make_engine(self.admin)
        try:
            with engine.connect() as conn:
                return bool(conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first())
        finally:
            engine.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request) -> str:
    require_server(request.param)
    return request.param


@pytest.fixture
def roles_estate(server, tmp_path):
    """crm, marketing and the audit store seeded as the administrator, the chain made by `lethe audit
    init`; the roles of crm, marketing and the audit store made by the committed scripts."""
    found = RoleEstate(server, tmp_path)
    try:
        found.crm, found.marketing, found.audit = (found.database(x) for x in ("crm", "marketing", "audit"))
        crm_engine = make_engine(found.url(found.crm))
        used = seed_crm(crm_engine, AS_OF, sizes=SMALL)
        crm_engine.dispose()
        marketing_engine = make_engine(found.url(found.marketing))
        seed_marketing(marketing_engine, AS_OF, used["emails"], sizes=SMALL)
        marketing_engine.dispose()
        init = lethe({**os.environ, "AIRFLOW_CONN_LETHE_AUDIT": found.url(found.audit)}, "audit", "init")
        assert init.returncode == 0 and "created table lethe_audit" in init.stdout, init.stderr
        for name, database in (("crm", found.crm), ("marketing", found.marketing), ("audit", found.audit)):
            found.role[name] = found.name(f"{name}_role")
            found.run_script(name, database, found.role[name])
        (tmp_path / "no_trials").mkdir()
        found.urls = {
            "crm": found.url(found.crm, found.role["crm"]),
            "marketing": found.url(found.marketing, found.role["marketing"]),
            "lethe_audit": found.url(found.audit, found.role["audit"]),
            "trials": f"sqlite:///{tmp_path / 'no_trials'}",
        }
        yield found
    finally:
        found.drop()


def _refused(engine, statement: str) -> str:
    """The error a statement meets; fails the test when it succeeds."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the message says which refusal it is
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:  # DROP DATABASE needs it
            conn.exec_driver_sql(statement)
    return str(caught.value).lower()


def test_the_roles_run_their_rules_and_nothing_else(roles_estate):
    engines = Engines(resolve=lambda conn_id: roles_estate.urls[conn_id])
    try:
        ctx = make_context(
            run_id="roles",
            dag_id="test_dag",
            task_id="t",
            as_of=AS_OF,
            dry_run=False,
            key=TEST_KEY,
            engines=engines,
            batch_size=100,
            create_audit=True,  # through the audit role: it finds the chain and runs no DDL
        )
        results = {rule: run_rule(ctx, rule) for rule in ("C1", "K1", "N1")}
    finally:
        engines.dispose()
    assert all(r["status"] == "ok" and r["remaining_after"] == 0 for r in results.values()), results
    assert results["C1"]["deleted"] > 0 and results["K1"]["anonymised"] > 0 and results["N1"]["deleted"] > 0

    audit_role = make_engine(roles_estate.urls["lethe_audit"])
    crm_role = make_engine(roles_estate.urls["crm"])
    try:
        trail = AuditTrail(audit_role, TEST_KEY)
        assert trail.create() == []
        verified = trail.verify()
        assert verified.ok and verified.entries > results["C1"]["deleted"]
        # Refused by the privileges themselves, before the append-only trigger could say a word.
        for statement in (
            "UPDATE lethe_audit SET record_count = 0 WHERE seq = 1",
            "DELETE FROM lethe_audit WHERE seq = 1",
        ):
            message = _refused(audit_role, statement)
            assert "denied" in message and "append-only" not in message, message
        assert trail.verify().ok
        # The CRM's role changes only what the rules change.
        for statement in (
            f"DROP DATABASE {roles_estate.marketing}",
            "UPDATE companies SET name = 'x' WHERE id = 1",
            "UPDATE contacts SET created_at = created_at WHERE id = 1",
            "DELETE FROM companies WHERE id = 1",
        ):
            message = _refused(crm_role, statement)
            assert any(word in message for word in DENIED), message
    finally:
        audit_role.dispose()
        crm_role.dispose()


def test_the_audit_store_says_what_is_missing_when_the_role_may_not_make_it(roles_estate):
    """Without the chain's guard, the role's create() cannot add it: it says to run `lethe audit init`."""
    guard = {
        "postgresql": ["DROP TRIGGER lethe_audit_append_only ON lethe_audit"],
        "mariadb": ["DROP TRIGGER lethe_audit_no_update", "DROP TRIGGER lethe_audit_no_delete"],
    }[roles_estate.backend]
    roles_estate.admin_execute(*guard, database=roles_estate.audit)
    role = make_engine(roles_estate.urls["lethe_audit"])
    try:
        with pytest.raises(AuditStoreNotReady, match="lacks append-only guard .* `lethe audit init`"):
            AuditTrail(role, TEST_KEY).create()
    finally:
        role.dispose()
    made = lethe({**os.environ, "AIRFLOW_CONN_LETHE_AUDIT": roles_estate.url(roles_estate.audit)}, "audit", "init")
    assert made.stdout.strip() == "audit store ready: created append-only guard", made.stderr


def _trials_inventory(tmp_path: Path, tag: str) -> Path:
    """The inventory with a name pattern that admits only this test's trial databases."""
    folder = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, folder)
    data = yaml.safe_load((folder / "trials.yaml").read_text())
    data["name_pattern"] = f"^trial_{tag}[a-z0-9_]{{1,40}}$"
    (folder / "trials.yaml").write_text(yaml.safe_dump(data))
    return folder


def _trial_server(estate) -> tuple[str, str]:
    """The trial server's role (by the committed script); returns the URL to make trial databases
    with (the owning role's on PostgreSQL) and the role's URL."""
    role = estate.name("trials_role")
    if estate.backend == "postgresql":
        owner = estate.name("trial_owner")
        estate.roles.append(owner)
        estate.admin_execute(f"CREATE ROLE {owner} LOGIN CREATEDB")
        server_database = estate.database("trialsrv")
        estate.run_script("trials", server_database, role, owner=owner)
        return estate.url(server_database, owner), estate.url(server_database, role)
    estate.run_script("trials", None, role)
    return estate.url(estate.admin.database), estate.url(None, role)


def _signup(estate, name: str, ends: datetime) -> None:
    """The catalog's only sign-up row: a trial database that ended ``ends`` (the seed's rows name
    databases off this test's name pattern, which the checks before T1 would quarantine)."""
    engine = make_engine(estate.url(estate.crm))
    try:
        with engine.begin() as conn:
            conn.execute(schema.trial_signups.delete())
            contact = conn.execute(select(schema.contacts.c.id).order_by(schema.contacts.c.id.desc())).first()[0]
            conn.execute(
                insert(schema.trial_signups),
                {
                    "id": 1,
                    "contact_id": contact,
                    "database_name": name,
                    "trial_started_at": ends - timedelta(days=30),
                    "trial_ends_at": ends,
                    "subscribed_at": None,
                },
            )
    finally:
        engine.dispose()


@pytest.mark.xdist_group("trial_servers")
def test_the_trials_role_drops_trial_databases_and_reaches_no_other(roles_estate, tmp_path, monkeypatch):
    maker_url, role_url = _trial_server(roles_estate)
    due = f"trial_{roles_estate.tag}due"
    roles_estate.databases.append(due)  # dropped at the end if the test fails before T1 does
    create_trial_database(maker_url, due, Faker("en_GB"), random.Random(1), AS_OF)
    _signup(roles_estate, due, AS_OF - timedelta(days=400))
    monkeypatch.setenv("LETHE_INVENTORY_DIR", str(_trials_inventory(tmp_path, roles_estate.tag)))
    urls = {**roles_estate.urls, "trials": role_url}
    engines = Engines(resolve=lambda conn_id: urls[conn_id])
    try:
        ctx = make_context(
            run_id="roles-t1", dag_id="test_dag", task_id="t", as_of=AS_OF, dry_run=False, key=TEST_KEY, engines=engines
        )
        result = run_rule(ctx, "T1")
    finally:
        engines.dispose()
    assert result["status"] == "ok" and result["deleted"] == 1, result
    role = make_engine(role_url)
    try:
        with role.connect() as conn:
            listed = {
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT datname FROM pg_database" if roles_estate.backend == "postgresql" else "SHOW DATABASES"
                    )
                )
            }
        assert due not in listed
        if roles_estate.backend == "mariadb":
            # Only trial databases (and information_schema) are even listed: not this test's CRM.
            assert roles_estate.crm not in listed and listed
            assert all(n == "information_schema" or n.startswith("trial_") for n in listed), listed
        message = _refused(role, f"DROP DATABASE {roles_estate.crm}")
        assert any(word in message for word in DENIED), message
    finally:
        role.dispose()
    audit_role = make_engine(roles_estate.urls["lethe_audit"])
    try:
        assert AuditTrail(audit_role, TEST_KEY).verify().ok
    finally:
        audit_role.dispose()


def _check(env, *args) -> tuple[int, str]:
    done = lethe(env, "policy", "check", *args)
    return done.returncode, done.stdout + done.stderr


def _lines(output: str, word: str) -> list[str]:
    return [line for line in output.splitlines() if f": {word}: " in line]


@pytest.mark.xdist_group("trial_servers")
def test_policy_check_reports_missing_and_excess_privileges(roles_estate, tmp_path):
    maker_url, role_url = _trial_server(roles_estate)
    trial = f"trial_{roles_estate.tag}kept"
    roles_estate.databases.append(trial)
    create_trial_database(maker_url, trial, Faker("en_GB"), random.Random(2), AS_OF)
    (tmp_path / "weblogs").mkdir()
    env = {
        **os.environ,
        "LETHE_ESTATE_DIR": str(tmp_path / "no-estate"),
        "AIRFLOW_CONN_CRM": roles_estate.urls["crm"],
        "AIRFLOW_CONN_MARKETING": roles_estate.urls["marketing"],
        "AIRFLOW_CONN_LETHE_AUDIT": roles_estate.urls["lethe_audit"],
        "AIRFLOW_CONN_TRIALS": role_url,
        "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(tmp_path / "weblogs")}}),
    }
    if roles_estate.backend == "postgresql":
        # Ownership is checked on the trial databases the pattern admits: this test's only. (On
        # MariaDB the committed script's grant is on the inventory's own pattern.)
        env["LETHE_INVENTORY_DIR"] = str(_trials_inventory(tmp_path, roles_estate.tag))
    crm_db = roles_estate.crm if roles_estate.backend == "mariadb" else f"{roles_estate.crm}.public"
    crm_role = roles_estate.role["crm"]
    account = crm_role if roles_estate.backend == "postgresql" else f"'{crm_role}'@'%%'"

    code, output = _check(env, "--strict")
    assert code == 0, output
    assert not _lines(output, "missing") and not _lines(output, "excess"), output
    for conn_id in ("crm", "marketing", "trials", "lethe_audit"):
        assert re.search(
            rf"^privileges of connection {conn_id} \({roles_estate.backend}, user \S+\): ok: 0 missing, 0 excess$",
            output,
            re.M,
        ), output

    roles_estate.admin_execute(f"REVOKE DELETE ON {crm_db}.contacts FROM {account}", database=roles_estate.crm)
    code, output = _check(env)
    assert code == 1
    assert _lines(output, "missing") == [
        f"privileges of connection crm: missing: DELETE on {crm_db}.contacts (rule C1)"
    ], output

    roles_estate.admin_execute(
        f"GRANT DELETE ON {crm_db}.contacts TO {account}",
        f"GRANT UPDATE ON {crm_db}.companies TO {account}",
        database=roles_estate.crm,
    )
    code, output = _check(env)
    assert code == 0, output
    assert _lines(output, "excess") == [
        f"privileges of connection crm: excess: UPDATE on {crm_db}.companies (no rule writes it)"
    ], output
    assert not _lines(output, "missing")
    code, output = _check(env, "--strict")
    assert code == 1 and "privileges of connection crm (" in output and "): FAILED: 0 missing, 1 excess" in output

    admin = {
        **env,
        "AIRFLOW_CONN_CRM": roles_estate.url(roles_estate.crm),
        "AIRFLOW_CONN_MARKETING": roles_estate.url(roles_estate.marketing),
        "AIRFLOW_CONN_LETHE_AUDIT": roles_estate.url(roles_estate.audit),
        "AIRFLOW_CONN_TRIALS": maker_url
        if roles_estate.backend == "mariadb"
        else roles_estate.url(make_url(role_url).database),
    }
    code, output = _check(admin)
    assert code == 0 and not _lines(output, "missing"), output
    first_excess = {
        "postgresql": "excess: superuser (every privilege on the server)",
        "mariadb": "excess: global privileges, on every database of the server: ",
    }[roles_estate.backend]
    for conn_id in ("crm", "marketing", "trials", "lethe_audit"):
        assert f"privileges of connection {conn_id}: {first_excess}" in output, output
    assert _check(admin, "--strict")[0] == 1
    # Counts and names of tables and roles only: no row value, no trial database's name.
    assert trial not in output

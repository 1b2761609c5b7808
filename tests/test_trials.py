"""Rule T1 (drop unconverted free-trial databases) on SQLite, PostgreSQL and MariaDB.

Every test makes its own trial databases on the real server (SQLite: a folder), named with a
per-test tag, and an inventory whose name pattern only admits that tag, so tests running at the
same time on the same server never see each other's trials. Whatever a test leaves on a server is
dropped at the end.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from faker import Faker
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import make_url

from lethe.audit import AuditTrail, audit_table
from lethe.config import Inventory, load_inventory, load_policy
from lethe.db import make_engine
from lethe.demo import schema
from lethe.demo.trials import create_database, create_trial_database, drop_database, seed_trial_databases
from lethe.runner import run_rule, scan_rule
from lethe.schema import SchemaMismatch
from lethe.sources.base import action_for
from lethe.sources.trials.actions import DONE, INTENT, SYSTEM_DATABASES, TrialDrop
from lethe.sources.trials.models import TrialDatabasesSource
from lethe.subjects import email_key

from conftest import SERVER_URLS, TEST_KEY, airflow_environment

# T1 lists every trial-like database on a server: tests that make them share one xdist worker.
pytestmark = pytest.mark.xdist_group("trial_servers")

AS_OF = datetime(2026, 11, 26)
DEADLINE = AS_OF - timedelta(days=90)  # a trial that ended here is due exactly at the as-of
SECOND = timedelta(seconds=1)
OLD = DEADLINE - timedelta(days=200)


# --------------------------------------------------------------------------- the estate


@dataclass
class Trials:
    """A CRM with trial sign-ups, a trials server (or folder) and helpers to look at both."""

    backend: str
    estate: object
    tmp_path: Path
    tag: str
    pattern: str
    url: str
    fake: Faker = field(default_factory=lambda: Faker("en_GB"))
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    emails: dict[int, str] = field(default_factory=dict)
    _ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.fake.seed_instance(7)
        schema.crm.create_all(self.crm)
        with self.crm.begin() as conn:
            conn.execute(insert(schema.companies), {"id": 1, "name": "Prospect BV", "country": "NL"})

    @property
    def crm(self):
        return self.estate.engine("crm")

    def name(self, label: str) -> str:
        return f"trial_{self.tag}{label}"

    def _next(self, table: str) -> int:
        self._ids[table] = self._ids.get(table, 0) + 1
        return self._ids[table]

    def signup(
        self,
        database_name: str,
        ends: datetime,
        *,
        subscribed: datetime | None = None,
        email: str | None = None,
        contact: int | None = None,
    ) -> int:
        """A sign-up row (with its own contact unless one is given)."""
        with self.crm.begin() as conn:
            if contact is None:
                contact = self._next("contacts")
                email = email or f"trial.person{contact}@example.org"
                self.emails[contact] = email
                conn.execute(
                    insert(schema.contacts),
                    {
                        "id": contact,
                        "company_id": 1,
                        "first_name": "Ann",
                        "last_name": f"Lee{contact}",
                        "email": email,
                        "created_at": AS_OF - timedelta(days=30),
                        "last_contact_at": None,
                    },
                )
            key = self._next("trial_signups")
            conn.execute(
                insert(schema.trial_signups),
                {
                    "id": key,
                    "contact_id": contact,
                    "database_name": database_name,
                    "trial_started_at": ends - timedelta(days=30),
                    "trial_ends_at": ends,
                    "subscribed_at": subscribed,
                },
            )
        return key

    def trial(self, label: str, ends: datetime, **kwargs) -> str:
        """A sign-up row and its trial database."""
        name = self.name(label)
        self.signup(name, ends, **kwargs)
        self.database(name)
        return name

    def database(self, name: str) -> str:
        create_trial_database(self.url, name, self.fake, self.rng, AS_OF)
        return name

    def hold(self, email: str, placed: datetime, released: datetime | None = None) -> None:
        with self.crm.begin() as conn:
            conn.execute(
                insert(schema.legal_holds),
                {
                    "id": self._next("legal_holds"),
                    "email": email,
                    "reason": "dispute",
                    "placed_at": placed,
                    "released_at": released,
                },
            )

    def restriction(self, email: str, requested: datetime, lifted: datetime | None = None) -> None:
        with self.crm.begin() as conn:
            conn.execute(
                insert(schema.restrictions),
                {"id": self._next("restrictions"), "email": email, "requested_at": requested, "lifted_at": lifted},
            )

    # -- looking

    def present(self) -> set[str]:
        """Every database on the server (SQLite: every file in the folder, by stem)."""
        if self.backend == "sqlite":
            return {p.name.removesuffix(".sqlite") for p in Path(make_url(self.url).database).iterdir()}
        engine = make_engine(self.url)
        query = "SELECT datname FROM pg_database" if self.backend == "postgresql" else "SHOW DATABASES"
        try:
            with engine.connect() as conn:
                return {row[0] for row in conn.execute(text(query))}
        finally:
            engine.dispose()

    def mine(self) -> set[str]:
        return {n for n in self.present() if self.tag in n}

    def catalog(self) -> dict[str, list]:
        """Per database name, for each sign-up row naming it: the as-of of the run that Lethe's
        own record (the ``database_dropped`` entries) says dropped it, or None."""
        recorded = {}
        for entry in self.audit(DONE):
            details = json.loads(entry["details"])
            for key in details["signups"]:
                recorded[(details["database"], key)] = datetime.fromisoformat(details["dropped_as_of"])
        t = schema.trial_signups
        with self.crm.connect() as conn:
            rows = conn.execute(select(t.c.id, t.c.database_name).order_by(t.c.id)).all()
        found: dict[str, list] = {}
        for key, name in rows:
            found.setdefault(name, []).append(recorded.get((name, key)))
        return found

    def audit(self, *actions: str) -> list[dict]:
        trail = AuditTrail(self.estate.engine("lethe_audit"), TEST_KEY)
        trail.create()
        conditions = [audit_table.c.action.in_(actions)] if actions else []
        return list(trail.entries(*conditions))

    # -- running

    def inventory(self, pattern: str | None = None, **catalog) -> Inventory:
        base = load_inventory(policy=load_policy())
        data = base.sources["trials"].model_dump()
        data["name_pattern"] = pattern or self.pattern
        data["catalog"].update(catalog)
        return Inventory(sources={**base.sources, "trials": TrialDatabasesSource.model_validate(data)})

    def context(self, as_of: datetime = AS_OF, *, pattern: str | None = None, inventory=None, **kwargs):
        return self.estate.context(as_of, inventory=inventory or self.inventory(pattern), **kwargs)

    def run(self, as_of: datetime = AS_OF, **kwargs) -> dict:
        run_id = kwargs.pop("run_id", f"run-{uuid.uuid4().hex[:8]}")
        return run_rule(self.context(as_of, run_id=run_id, **kwargs), "T1")


def lenient_policy():
    """The policy with no quarantine limit: for tests where most catalog rows are off the name
    pattern on purpose (the checks before T1 quarantine them; see test_trials_validation.py)."""
    policy = load_policy()
    return policy.model_copy(update={"validation": policy.validation.model_copy(update={"max_quarantine_share": 1.0})})


def _drop_leftovers(backend: str, url: str, tag: str) -> None:
    if backend == "sqlite":
        return
    engine = make_engine(url)
    query = "SELECT datname FROM pg_database" if backend == "postgresql" else "SHOW DATABASES"
    with engine.connect() as conn:
        names = [row[0] for row in conn.execute(text(query)) if tag in row[0]]
    engine.dispose()
    for name in names:
        drop_database(url, name)


@pytest.fixture
def trials(backend, estate, tmp_path):
    tag = f"{uuid.uuid4().hex[:8]}_"
    if backend == "sqlite":
        folder = tmp_path / "trials"
        folder.mkdir()
        url = f"sqlite:///{folder}"
    else:
        url = SERVER_URLS[backend]
    estate.urls["trials"] = url
    found = Trials(backend, estate, tmp_path, tag, rf"^trial_{tag}[a-z0-9_]{{1,40}}$", url)
    yield found
    estate.engines.dispose()
    _drop_leftovers(backend, url, tag)


# --------------------------------------------------------------------------- deciding


def test_boundaries_one_second_before_and_after(trials):
    due_now = trials.trial("due_now", DEADLINE)  # trial end + 90 days == as-of: due
    a_second_early = trials.trial("second_early", DEADLINE - SECOND)
    a_second_late = trials.trial("second_late", DEADLINE + SECOND)  # due one second after the as-of

    # One second before the as-of, the trial ending exactly at the boundary is not due yet.
    before = trials.run(AS_OF - SECOND, dry_run=True)
    assert before["eligible"] == 1 and before["extra"]["would_drop_names"] == [a_second_early]
    assert before["extra"]["not_yet_due"] == 2
    assert trials.mine() == {due_now, a_second_early, a_second_late}

    result = trials.run()
    assert result["deleted"] == 2 and result["remaining_after"] == 0 and result["status"] == "ok"
    assert trials.mine() == {a_second_late}
    assert result["extra"]["not_yet_due"] == 1
    assert result["extra"]["next_due"] == (DEADLINE + SECOND + timedelta(days=90)).date().isoformat()
    assert result["overdue_before"] == 0  # both were due within the last day: on time

    catalog = trials.catalog()
    assert catalog[due_now] == [AS_OF] and catalog[a_second_early] == [AS_OF]  # the run's as-of
    assert catalog[a_second_late] == [None]

    # One second later the last one goes too.
    later = trials.run(AS_OF + SECOND)
    assert later["deleted"] == 1 and trials.mine() == set()


def test_converted_trials_and_a_converted_customers_decoy_are_kept(trials):
    converted = trials.trial("converted", OLD, subscribed=OLD - timedelta(days=5))
    # A subscription recorded after the as-of still keeps it: the customer uses the database now.
    late_convert = trials.trial("late_convert", OLD, subscribed=AS_OF + timedelta(days=2))
    # Named like a trial, used by a converted customer: an old unconverted sign-up and the later
    # sign-up that converted both name it.
    decoy = trials.trial("customer_planning", OLD - timedelta(days=100))
    trials.signup(decoy, OLD + timedelta(days=40), subscribed=OLD + timedelta(days=30))
    unconverted = trials.trial("unconverted", OLD)

    result = trials.run()
    assert trials.mine() == {converted, late_convert, decoy}
    assert result["deleted"] == 1
    assert result["extra"]["kept_converted"] == 3
    assert trials.catalog()[decoy] == [None, None]
    assert trials.catalog()[unconverted] == [AS_OF]


def test_held_and_restricted_trials_are_kept_lapsed_ones_dropped(trials):
    held = trials.trial("held", OLD, email="held.person@example.org")
    trials.hold("  HELD.Person@Example.org ", AS_OF - timedelta(days=10))  # typed differently
    restricted = trials.trial("restricted", OLD, email="restricted.person@example.org")
    trials.restriction("Restricted.Person@example.org", AS_OF)  # in force from the as-of itself
    trials.trial("released", OLD, email="released.person@example.org")
    trials.hold("released.person@example.org", OLD, released=AS_OF)  # released by the as-of
    trials.trial("future", OLD, email="future.person@example.org")
    trials.hold("future.person@example.org", AS_OF + SECOND)  # placed after the as-of
    held_not_due = trials.trial("held_not_due", DEADLINE + timedelta(days=3), email="held2@example.org")
    trials.hold("held2@example.org", AS_OF - timedelta(days=1))

    result = trials.run()
    assert trials.mine() == {held, restricted, held_not_due}
    assert result["deleted"] == 2
    assert result["exempt_hold"] == 1 and result["exempt_restriction"] == 1
    assert result["extra"]["kept_held"] == 2 and result["extra"]["not_yet_due"] == 1
    assert result["overdue_before"] == 2


def test_orphans_and_other_databases_are_untouched_and_reported(trials):
    again = trials.trial("again", OLD - timedelta(days=300))
    assert trials.run(run_id="earlier")["deleted"] == 1
    dropped = trials.trial("gone", OLD)
    orphan = trials.database(trials.name("orphan"))  # named like a trial, no sign-up row
    other = trials.database(f"planning_{trials.tag}production")  # not a trial at all
    # A database Lethe recorded dropping for its sign-up row, which exists again: never retried.
    trials.database(again)

    result = trials.run()
    assert trials.mine() == {orphan, other, again}
    assert result["deleted"] == 1 and result["extra"]["missing"] == 0
    assert result["extra"]["orphans"] == 2
    assert sorted(result["extra"]["orphan_names"]) == sorted([orphan, again])
    assert dropped not in trials.mine()


def test_system_and_lethes_own_databases_are_never_candidates(trials, backend):
    """Even with a pattern loose enough to match them, and eligible sign-up rows naming them."""
    loose = r"^[a-z0-9_]{1,60}$"
    own = {make_url(trials.estate.urls[c]).database for c in ("crm", "lethe_audit")}
    if backend == "sqlite":
        # Put Lethe's own files in the trial folder: same folder, same risk as a shared server.
        folder = trials.tmp_path
        trials.estate.urls["trials"] = trials.url = f"sqlite:///{folder}"
        own = {Path(name).name.removesuffix(".sqlite") for name in own}
        system = sorted(SYSTEM_DATABASES)
        for name in system:
            (folder / f"{name}.sqlite").write_bytes(b"")
    else:
        system = sorted(SYSTEM_DATABASES & trials.present())
        assert system, "the server shows its system databases"
    for name in system + sorted(own):
        trials.signup(name, OLD)
    victim = trials.trial("victim", OLD)
    orphan = trials.database(trials.name("orphan"))

    result = trials.run(pattern=loose)
    after = trials.present()  # other test runs may share the server: look at our names only
    assert set(system) <= after and own <= after and orphan in after
    assert victim not in after
    assert (
        orphan in result["extra"]["orphan_names"]
        or result["extra"]["orphans"] > len(result["extra"]["orphan_names"]) - 1
    )
    assert result["deleted"] == 1 and result["extra"]["refused"] == len(system) + len(own)
    assert trials.catalog()[victim] == [AS_OF]
    for name in system:
        assert trials.catalog()[name] == [None]


def test_odd_names_are_refused_not_dropped(trials, backend):
    odd = [
        trials.name("o'brien"),
        trials.name("x;drop"),
        trials.name("a b"),
        trials.name("tick`s"),
        trials.name('dq"x'),
        trials.name("new\nline"),
    ]
    outside = [f"Trial_{trials.tag}Upper", f"trial{trials.tag}x", trials.name("x" * 45)]
    for name in odd + outside:
        trials.signup(name, OLD)
    created = set()
    for name in odd[:5] + outside:
        create_database(trials.url, name)
        created.add(name)
    plain = trials.trial("plain", OLD)
    assert created | {plain} <= trials.present()

    # A pattern loose enough to admit them does not let them through either.
    loose = trials.run(dry_run=True, pattern=r"^trial_.+$", policy=lenient_policy())
    assert plain in loose["extra"]["would_drop_names"]
    assert not set(odd) & set(loose["extra"]["would_drop_names"])
    assert {repr(n) for n in odd} <= set(loose["extra"]["refused_names"])

    result = trials.run(policy=lenient_policy())
    assert trials.present() >= created and plain not in trials.present()
    assert result["deleted"] == 1
    assert result["quarantine"] == {"name_refused": len(odd) + len(outside)}  # off the pattern
    assert result["extra"]["refused"] == len(odd) + len(outside)
    assert set(result["extra"]["refused_names"]) == {repr(n) for n in odd + outside}
    for name in odd + outside:
        assert trials.catalog()[name] == [None]

    # The last gate: the drop itself refuses such names whatever called it.
    action = action_for(trials.context(), "T1")
    for name in odd + outside + ["postgres", "mysql", "template1"]:
        with pytest.raises(ValueError, match="refusing to drop"):
            action.drop_database(name)
    assert trials.present() >= created


# --------------------------------------------------------------------------- audit and recovery


def test_drop_is_audited_and_a_second_run_changes_nothing(trials, backend):
    name = trials.trial("audited", OLD)
    email = trials.emails[1]
    # A second unconverted sign-up naming the same database would quarantine both rows
    # (database_duplicated): the database would be kept, see test_trials_validation.py.
    kept = trials.trial("kept", DEADLINE + timedelta(days=5))

    first = trials.run(run_id="first")
    assert first["deleted"] == 1 and first["related"]["users"] >= 1 and first["related"]["tasks"] >= 2
    assert trials.catalog()[name] == [AS_OF]
    intents, dones = trials.audit(INTENT), trials.audit(DONE)
    assert len(intents) == len(dones) == 1
    intent, done = intents[0], dones[0]
    assert intent["seq"] < done["seq"]
    details = json.loads(intent["details"])
    assert details["database"] == name and set(details["tables"]) == {"users", "resources", "tasks"}
    assert details["signups"] == [1]
    assert intent["record_count"] == sum(details["tables"].values()) == done["record_count"]
    assert intent["subject_key"] == done["subject_key"] == email_key(TEST_KEY, email)
    assert json.loads(done["details"])["intent"] == intent["entry_id"]
    assert done["as_of"] == AS_OF and not done["dry_run"]
    assert AuditTrail(trials.estate.engine("lethe_audit"), TEST_KEY).verify().ok
    # Names of databases and tables only: no address anywhere in the trail.
    for entry in trials.audit():
        assert "@" not in json.dumps(entry, default=str)

    entries, present, catalog = len(trials.audit()), trials.mine(), trials.catalog()
    second = trials.run(run_id="second")
    assert second["eligible"] == 0 and second["deleted"] == 0 and second["remaining_after"] == 0
    assert trials.mine() == present == {kept} and trials.catalog() == catalog
    assert len(trials.audit(INTENT, DONE)) == 2
    assert len(trials.audit()) == entries + 1  # only the run's summary entry


def test_dry_run_lists_what_would_go_and_changes_nothing(trials):
    doomed = {trials.trial("one", OLD), trials.trial("two", DEADLINE)}
    trials.trial("later", DEADLINE + SECOND)
    before, catalog = trials.mine(), trials.catalog()

    result = trials.run(dry_run=True)
    assert sorted(result["extra"]["would_drop_names"]) == sorted(doomed)
    assert result["deleted"] == 0 and result["remaining_after"] == 2 and result["status"] == "ok"
    assert trials.mine() == before and trials.catalog() == catalog
    assert trials.audit(INTENT, DONE) == []
    assert {json.loads(e["details"])["database"] for e in trials.audit("would_drop_database")} == doomed


def test_crash_between_intent_and_drop_is_dropped_by_the_next_run(trials, monkeypatch):
    name = trials.trial("crash_before", OLD)

    def power_cut(self, database):
        raise RuntimeError("power cut before the drop")

    with monkeypatch.context() as patch:
        patch.setattr(TrialDrop, "drop_database", power_cut)
        with pytest.raises(RuntimeError, match="power cut"):
            trials.run(run_id="crashed")
    assert name in trials.mine()
    assert len(trials.audit(INTENT)) == 1 and trials.audit(DONE) == []
    assert trials.catalog()[name] == [None]

    # Still eligible, still there: the next run drops it and writes the one done entry.
    result = trials.run(AS_OF + timedelta(days=1), run_id="next")
    assert result["deleted"] == 1 and result["extra"]["recovered"] == 0
    assert name not in trials.mine()
    assert len(trials.audit(DONE)) == 1
    assert trials.catalog()[name] == [AS_OF + timedelta(days=1)]
    assert trials.run(AS_OF + timedelta(days=2))["deleted"] == 0
    assert len(trials.audit(DONE)) == 1


def test_crash_between_drop_and_done_is_recorded_once_by_the_next_run(trials, monkeypatch):
    name = trials.trial("crash_after", OLD)
    kept = trials.trial("kept", DEADLINE + timedelta(days=30))

    def power_cut(self, *args, **kwargs):
        raise RuntimeError("power cut after the drop")

    with monkeypatch.context() as patch:
        patch.setattr(TrialDrop, "record_dropped", power_cut)
        with pytest.raises(RuntimeError, match="power cut"):
            trials.run(run_id="crashed")
    assert name not in trials.mine()  # dropped, but not recorded
    assert len(trials.audit(INTENT)) == 1 and trials.audit(DONE) == []
    assert trials.catalog()[name] == [None]

    # A dry run sees the unfinished drop and changes nothing.
    looked = trials.run(AS_OF + timedelta(days=1), dry_run=True)
    assert looked["extra"]["to_recover"] == 1 and looked["extra"]["would_drop"] == 1
    assert trials.audit(DONE) == []

    nextrun = AS_OF + timedelta(days=1)
    result = trials.run(nextrun, run_id="next")
    assert result["deleted"] == 1 and result["extra"]["recovered"] == 1 and result["remaining_after"] == 0
    dones = trials.audit(DONE)
    assert len(dones) == 1 and len(trials.audit(INTENT)) == 1
    details = json.loads(dones[0]["details"])
    assert details["recovered"] is True and details["intent"] == trials.audit(INTENT)[0]["entry_id"]
    # The run that dropped it (the one that wrote the intent) is the one recorded on the row.
    assert trials.catalog()[name] == [AS_OF]
    assert trials.mine() == {kept}

    again = trials.run(nextrun + timedelta(days=1))
    assert again["deleted"] == 0 and again["extra"]["recovered"] == 0
    assert len(trials.audit(DONE)) == 1


def test_each_drop_decides_again_from_the_catalog(trials):
    """A hold placed after the scan listed the item keeps the database (holds always win)."""
    name = trials.trial("late_hold", OLD, email="late.hold@example.org")
    ctx = trials.context()
    action = action_for(ctx, "T1")
    items = action.work_items()
    assert [item["name"] for item in items] == [name]
    trials.hold("late.hold@example.org", AS_OF - timedelta(days=1))
    outcome = action_for(trials.context(), "T1").enforce_item(items[0])
    assert outcome["status"] == "kept" and outcome["reason"] == "held"
    assert name in trials.mine() and trials.audit(INTENT) == []


def test_a_wrong_catalog_name_stops_the_run_before_anything_changes(trials):
    name = trials.trial("safe", OLD)
    ctx = trials.context(inventory=trials.inventory(subscribed_at="subscribed_on"))
    with pytest.raises(SchemaMismatch, match="trial_signups.subscribed_on"):
        scan_rule(ctx, "T1")
    with pytest.raises(SchemaMismatch):
        run_rule(ctx, "T1")
    assert name in trials.mine() and trials.audit() == []


# --------------------------------------------------------------------------- the demo seed


def test_demo_seed_and_run_drop_exactly_the_eligible_trials(trials):
    """seed_trial_databases' decoys on a small CRM, then T1: only the eligible trials go."""
    eligible = {trials.name("old"), trials.name("due_now")}
    trials.signup(trials.name("old"), OLD)
    trials.signup(trials.name("due_now"), DEADLINE)
    trials.signup(trials.name("later"), DEADLINE + SECOND)
    trials.signup(trials.name("converted"), OLD, subscribed=OLD)
    with trials.crm.begin() as conn:  # the seed's converted customer needs a customer contact
        conn.execute(update(schema.companies).values(customer_since=OLD.date()))
    seeded = seed_trial_databases(trials.url, trials.crm, AS_OF, seed=5, tag=trials.tag)
    before = trials.mine()
    assert set(seeded["orphans"]) | set(seeded["others"]) | {seeded["converted"]} <= before
    assert set(seeded["refused"]) <= trials.present()

    # The seed's refused names are off the pattern: quarantined, 5 of the catalog's 11 rows.
    result = trials.run(policy=lenient_policy())
    assert before - trials.mine() == eligible
    assert result["deleted"] == 2
    assert result["quarantine"] == {"name_refused": len(seeded["refused"])}
    assert result["extra"]["orphans"] == len(seeded["orphans"])
    assert result["extra"]["refused"] == len(seeded["refused"])
    assert result["extra"]["kept_converted"] == 2  # the plain converted trial and the customer's


# --------------------------------------------------------------------------- the DAG


@pytest.mark.airflow
def test_the_dag_maps_one_named_enforce_task_per_database_in_the_pool(tmp_path):
    """``airflow dags test`` on a small SQLite estate: one mapped drop per eligible database."""
    estate = tmp_path / "estate"
    folder = estate / "trials"
    folder.mkdir(parents=True)
    crm = make_engine(f"sqlite:///{estate / 'crm.sqlite'}")
    schema.crm.create_all(crm)
    fake, rng = Faker("en_GB"), random.Random(3)
    names = {
        "trial_alpha": OLD,
        "trial_beta": DEADLINE,
        "trial_gamma": DEADLINE + SECOND,
        "trial_delta": OLD - timedelta(days=50),
    }
    with crm.begin() as conn:
        conn.execute(insert(schema.companies), {"id": 1, "name": "P", "country": "NL"})
        for i, (name, ends) in enumerate(names.items(), start=1):
            conn.execute(
                insert(schema.contacts),
                {"id": i, "company_id": 1, "email": f"p{i}@example.org", "created_at": AS_OF - timedelta(days=10)},
            )
            conn.execute(
                insert(schema.trial_signups),
                {
                    "id": i,
                    "contact_id": i,
                    "database_name": name,
                    "trial_started_at": ends - timedelta(days=30),
                    "trial_ends_at": ends,
                    "subscribed_at": AS_OF if name == "trial_delta" else None,
                },
            )
    for name in names:
        create_trial_database(f"sqlite:///{folder}", name, fake, rng, AS_OF)
    create_trial_database(f"sqlite:///{folder}", "trial_orphan", fake, rng, AS_OF)
    crm.dispose()

    home = tmp_path / "airflow"
    env = {
        **airflow_environment(home),
        "AIRFLOW_CONN_CRM": f"sqlite:///{estate / 'crm.sqlite'}",
        "AIRFLOW_CONN_MARKETING": f"sqlite:///{estate / 'marketing.sqlite'}",
        "AIRFLOW_CONN_LETHE_AUDIT": f"sqlite:///{estate / 'audit.sqlite'}",
        "AIRFLOW_CONN_TRIALS": f"sqlite:///{folder}",
        "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(estate / "weblogs")}}),
        "LETHE_AUDIT_KEY": TEST_KEY,
        "LETHE_REPORTS_DIR": str(tmp_path / "reports"),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run(
        [airflow, "dags", "test", "lethe_trials_retention", "2026-11-26", "-c", json.dumps({"as_of": "2026-11-26"})],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    with sqlite3.connect(home / "airflow.db") as db:
        mapped = db.execute(
            "SELECT map_index, rendered_map_index, state, pool FROM task_instance "
            "WHERE task_id = 'T1.enforce' ORDER BY map_index"
        ).fetchall()
    assert [(m[1], m[2], m[3]) for m in mapped] == [
        ("trial_alpha", "success", "lethe_trial_drops"),
        ("trial_beta", "success", "lethe_trial_drops"),
    ]
    assert {p.name for p in folder.iterdir()} == {"trial_gamma.sqlite", "trial_delta.sqlite", "trial_orphan.sqlite"}
    report = json.loads(next((tmp_path / "reports" / "lethe_trials_retention").glob("*/report.json")).read_text())
    t1 = report["rules"][0]
    assert t1["deleted"] == 2 and t1["remaining_after"] == 0 and t1["status"] == "ok"
    assert t1["extra"]["orphans"] == 1 and t1["extra"]["kept_converted"] == 1 and t1["extra"]["not_yet_due"] == 1


def test_a_trial_kept_by_a_hold_leaves_one_trace(trials):
    held = trials.trial("held_trace", OLD, email="held.trace@example.org")
    trials.hold("Held.Trace@example.org", AS_OF - timedelta(days=10))
    first = trials.run(run_id="first")
    second = trials.run(AS_OF + timedelta(days=1), run_id="second")
    assert held in trials.mine()
    assert first["extra"]["kept_recorded"] == 1 and second["extra"]["kept_recorded"] == 0
    kept = trials.audit("kept_by_legal_hold")
    assert len(kept) == 1 and kept[0]["subject_key"] == email_key(TEST_KEY, "held.trace@example.org")
    assert json.loads(kept[0]["details"]) == {"database": held, "since": (AS_OF - timedelta(days=10)).isoformat()}

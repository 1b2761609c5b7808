"""The reference estate, built from shared/reference-estate.md, through the engine and through Airflow.

Every (backend, variant) pair of :mod:`reference_estate` gets the same boundary rows and the same
expected outcomes, stated by id there:

* ``test_every_rule_at_its_boundaries``: the runner the DAGs use (``lethe.runner``), every SQL
  rule and T1 in the DAGs' order (T1 before C1): a run one second before the as-of (everything
  due earlier goes, nothing whose deadline is the as-of is touched), a run at the as-of (exactly
  the expected rows, databases and counts), and a second run that changes nothing.
* ``test_a_second_short_of_the_deadline_in_a_non_utc_database``: PostgreSQL ``timestamptz`` in a
  Paris or New York database, N1, W1, W2 and C1 each on its own.
* ``test_the_nightly_dags_on_the_reference_estate``: the four DAGs under real Airflow on SQLite,
  PostgreSQL (Paris) and MariaDB, leaving exactly the expected estate and a chain that verifies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timezone

import pytest

from lethe.audit import AuditTrail
from lethe.db import make_engine
from lethe.runner import Engines, run_rule
from lethe.subjects import email_key

from conftest import REPO, SERVER_URLS, TEST_KEY, Databases, Estate, airflow_environment, require_server
from reference_estate import (
    ANONYMISED,
    AS_OF,
    AT_AS_OF_RUN,
    AT_DEADLINE,
    DROPPED_TRIALS,
    EARLY_RUN,
    LOG_FILES,
    NIGHTLY_RUN,
    OLD_SUPPRESSED,
    PAIRS,
    REMOVED,
    RULE_ORDER,
    SECOND,
    SUPPRESSED,
    SUPPRESSED_AT_DEADLINE,
    TRIALS_AT_DEADLINE,
    VARIANTS,
    ReferenceEstate,
    all_ids,
    check_layout,
    expected_log_text,
    expected_snapshot,
    minus,
    read_weblogs,
    server_connection,
)

# T1 lists every trial-like database on a server: tests that make them share one xdist worker.
pytestmark = pytest.mark.xdist_group("trial_servers")

DAG_IDS = [
    "lethe_trials_retention",
    "lethe_crm_retention",
    "lethe_marketing_retention",
    "lethe_weblogs_retention",
]  # trials before crm: C1's wait is settled by then


def pairs(selected):
    return [pytest.param(backend, variant, id=f"{backend}-{variant}") for backend, variant in selected]


@pytest.fixture
def reference(backend, variant, estate, tmp_path):
    """The reference estate on ``backend`` in ``variant`` (crm, marketing and audit from ``estate``)."""
    ref = ReferenceEstate(
        backend,
        VARIANTS[variant],
        estate.urls,
        tmp_path / "reference",
        server_url=None if backend == "sqlite" else SERVER_URLS[backend],
    )
    try:
        ref.build()
        yield ref
    finally:
        estate.engines.dispose()
        ref.drop_leftovers()


# --------------------------------------------------------------------------- helpers


def counts(results: dict[str, dict], expected: dict[str, dict]) -> dict[str, dict]:
    """The counts ``expected`` names, picked from each rule's result (``waiting``: from extra)."""
    picked = {}
    for rule, names in expected.items():
        result = results[rule]
        picked[rule] = {
            name: (result.get("extra") or {}).get(name) if name == "waiting" else result.get(name) for name in names
        }
    return picked


def run_every_rule(estate, inventory, as_of, label) -> dict[str, dict]:
    ctx = estate.context(as_of, inventory=inventory, run_id=f"{label}-{uuid.uuid4().hex[:6]}")
    return {rule: run_rule(ctx, rule) for rule in RULE_ORDER}


def assert_estate(ref: ReferenceEstate, before: dict, removed, anonymised, dropped, suppressed, when: str):
    """Exactly ``removed`` gone, ``anonymised`` overwritten, every other row as it was."""
    now = ref.snapshot()
    want = expected_snapshot(before, removed, anonymised)
    ids = {table: sorted(now[table]) for table in want}
    assert ids == {table: sorted(rows) for table, rows in want.items()}, f"rows left {when}"
    for table in want:
        assert now[table] == want[table], f"{table} {when}"
    hashes = {email_key(TEST_KEY, address) for address in {OLD_SUPPRESSED, *suppressed}}
    assert set(now["suppression_list"]) == hashes, f"suppression list {when}"
    assert ref.trial_labels() == ref.expected_trials(dropped), f"trial databases {when}"


def test_the_expected_outcomes_name_rows_the_fixture_writes():
    known = all_ids()
    for spec in (REMOVED, ANONYMISED, AT_DEADLINE):
        for table, ids in spec.items():
            assert ids <= known[table], table
    for table, ids in AT_DEADLINE.items():
        assert ids <= REMOVED[table], table
    assert TRIALS_AT_DEADLINE <= DROPPED_TRIALS and SUPPRESSED_AT_DEADLINE <= SUPPRESSED


# --------------------------------------------------------------------------- the runner


@pytest.mark.parametrize("backend,variant", pairs(PAIRS), indirect=["backend"])
def test_every_rule_at_its_boundaries(reference, estate):
    check_layout(reference)  # a failure above this line is the fixture's, not the engine's
    inventory = reference.inventory()
    before = reference.snapshot()

    # One second before the as-of: everything due earlier goes, nothing whose deadline is the as-of.
    early = run_every_rule(estate, inventory, AS_OF - SECOND, "early")
    assert_estate(
        reference,
        before,
        minus(REMOVED, AT_DEADLINE),
        ANONYMISED,
        DROPPED_TRIALS - TRIALS_AT_DEADLINE,
        SUPPRESSED - SUPPRESSED_AT_DEADLINE,
        "one second before the as-of",
    )

    # At the as-of: exactly what is due at the as-of itself goes too.
    on_time = run_every_rule(estate, inventory, AS_OF, "on-time")
    assert_estate(reference, before, REMOVED, ANONYMISED, DROPPED_TRIALS, SUPPRESSED, "at the as-of")

    assert counts(early, EARLY_RUN) == EARLY_RUN
    assert counts(on_time, AT_AS_OF_RUN) == AT_AS_OF_RUN
    for results in (early, on_time):
        assert {r: (res["status"], res["remaining_after"]) for r, res in results.items()} == {
            r: ("ok", 0) for r in RULE_ORDER
        }

    # A second run at the same as-of changes nothing.
    after = reference.snapshot()
    again = run_every_rule(estate, inventory, AS_OF, "again")
    assert {r: (res["deleted"], res["anonymised"], res["eligible"]) for r, res in again.items()} == {
        r: (0, 0, 0) for r in RULE_ORDER
    }
    assert reference.snapshot() == after
    assert reference.trial_labels() == reference.expected_trials(DROPPED_TRIALS)
    assert AuditTrail(estate.engine("lethe_audit"), TEST_KEY).verify().ok


# --------------------------------------------------------------------------- time zones

# rule -> (table, removed at the as-of, kept): deadline at the as-of, at 23:30 and 00:30 UTC the
# day before / the same day (another calendar day in Paris and New York), and one second late.
TZ_CASES = {
    "N1": ("newsletter_subscribers", {301, 303, 304}, {302}),
    "W1": ("web_events", {401, 403, 404}, {402, 406}),
    "W2": ("cookie_consents", {501, 504, 505, 506}, {502, 503}),
    "C1": ("contacts", {101, 103, 105, 107, 108}, {102, 104, 106}),
}


@pytest.fixture(scope="module", params=["pg_tz_paris", "pg_tz_new_york"])
def tz_estate(request, tmp_path_factory):
    """One estate per time-zone variant for the four rules: they touch disjoint tables."""
    require_server("postgresql")
    root = tmp_path_factory.mktemp(request.param)
    databases = Databases("postgresql", root)
    urls = {conn_id: databases.new(conn_id.replace("lethe_", "")) for conn_id in ("crm", "marketing", "lethe_audit")}
    engines = Engines(resolve=lambda conn_id: urls[conn_id])
    ref = ReferenceEstate(
        "postgresql", VARIANTS[request.param], urls, root / "reference", server_url=SERVER_URLS["postgresql"]
    )
    try:
        ref.build()
        check_layout(ref)
        yield ref, Estate(urls, engines)
    finally:
        engines.dispose()
        ref.drop_leftovers()
        databases.drop_all()


@pytest.mark.parametrize("rule", list(TZ_CASES))
def test_a_second_short_of_the_deadline_in_a_non_utc_database(tz_estate, rule):
    """``CAST(timestamptz AS TIMESTAMP)`` gives the database's local time: Paris moves every
    deadline an hour late, New York five hours early. In UTC, the row at the deadline goes and
    the row one second short of it stays."""
    ref, estate = tz_estate
    table, removed, kept = TZ_CASES[rule]
    run_rule(estate.context(AS_OF, inventory=ref.inventory(), run_id=f"tz-{rule}"), rule)
    left = set(ref.snapshot()[table])
    assert {key: key in left for key in sorted(removed | kept)} == {key: key in kept for key in sorted(removed | kept)}


# --------------------------------------------------------------------------- the DAGs


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    return airflow_environment(tmp_path_factory.mktemp("airflow_home"))


def run_dags(env) -> tuple[dict, str]:
    as_of = AS_OF.replace(tzinfo=timezone.utc).isoformat()
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "reference_dag_runner.py"),
            as_of,
            json.dumps({"as_of": as_of}),
            *DAG_IDS,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, output[-4000:]
    return json.loads(lines[-1].removeprefix("RESULT ")), output


@pytest.mark.airflow
@pytest.mark.parametrize(
    "backend,variant",
    pairs([("sqlite", "plain"), ("postgresql", "pg_tz_paris"), ("mariadb", "plain")]),
    indirect=["backend"],
)
def test_the_nightly_dags_on_the_reference_estate(reference, airflow_env, tmp_path):
    nightly = sorted(p.stem for p in (REPO / "dags").glob("lethe_*_retention.py"))
    assert sorted(DAG_IDS) == nightly, "a nightly DAG is not run here"
    check_layout(reference)
    before = reference.snapshot()
    logs_before = read_weblogs(reference.weblogs)
    reports = tmp_path / "reports"
    env = {
        **airflow_env,
        **{
            f"AIRFLOW_CONN_{conn_id.upper()}": server_connection(reference.urls[conn_id])
            for conn_id in ("crm", "marketing", "lethe_audit", "trials")
        },
        "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(reference.weblogs)}}),
        "LETHE_INVENTORY_DIR": str(reference.inventory_dir),
        "LETHE_AUDIT_KEY": TEST_KEY,
        "LETHE_REPORTS_DIR": str(reports),
        # Enforcement armed for every source of the inventory, as after `lethe arm` (unarmed: dry runs).
        "AIRFLOW_VAR_LETHE_ARMED_SOURCES": json.dumps(sorted(reference.inventory().sources)),
    }
    found, output = run_dags(env)
    (tmp_path / "dag_output.txt").write_text(output)  # the task logs, for a failure below
    assert found["errors"] == {}, found["errors"]
    failed = {
        dag_id: {t: s for t, s in run["tasks"].items() if not s.endswith(("success", "skipped"))}
        for dag_id, run in found["runs"].items()
        if run["state"] != "success"
    }
    assert {dag_id: run["state"] for dag_id, run in found["runs"].items()} == {d: "success" for d in DAG_IDS}, (
        f"failed tasks {failed}; seconds { ({d: r.get('seconds') for d, r in found['runs'].items()}) }\n"
        + output[-6000:]
    )

    rules, dry = {}, {}
    for dag_id in DAG_IDS:
        [path] = (reports / dag_id).glob("*/report.json")
        report = json.loads(path.read_text())
        dry[dag_id] = report["dry_run"]
        rules.update({entry["rule"]: entry for entry in report["rules"]})
    assert dry == {dag_id: False for dag_id in DAG_IDS}, "the nightly runs were dry runs"

    assert_estate(reference, before, REMOVED, ANONYMISED, DROPPED_TRIALS, SUPPRESSED, "after the nightly run")
    logs_after = read_weblogs(reference.weblogs)
    assert sorted(logs_after) == sorted(name for name, fate in LOG_FILES.items() if fate != "deleted")
    for name, data in logs_after.items():
        if LOG_FILES[name] == "untouched":
            assert data == logs_before[name], name
        assert data == expected_log_text(name), name
    assert counts(rules, NIGHTLY_RUN) == NIGHTLY_RUN
    assert {r: (e["status"], e["remaining_after"]) for r, e in rules.items()} == {
        r: ("ok", 0) for r in (*RULE_ORDER, "L1", "L2")
    }

    engine = make_engine(reference.urls["lethe_audit"])
    try:
        assert AuditTrail(engine, TEST_KEY).verify().ok
    finally:
        engine.dispose()

"""The DAGs under the real Airflow runtime: import, conventions, and end-to-end ``dag.test()`` runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from lethe.audit import AuditTrail
from lethe.config import DEFAULT_POLICY
from lethe.db import make_engine
from lethe.demo.seed import DemoSizes, seed_crm, seed_marketing

from conftest import REPO, TEST_KEY, airflow_environment
from oracle import CRM_TABLES, MARKETING_TABLES, expected, snapshot

pytestmark = pytest.mark.airflow
AIRFLOW = Path(sys.executable).with_name("airflow")
SQL_DAGS = ["lethe_crm_retention", "lethe_marketing_retention"]


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    return airflow_environment(tmp_path_factory.mktemp("airflow_home"))


def run_runner(env, *args) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "dag_runner.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, output[-4000:]
    return json.loads(lines[-1].removeprefix("RESULT ")), output


def test_every_dag_imports_and_follows_the_conventions(airflow_env):
    found, _ = run_runner(airflow_env, "inspect")
    assert found["errors"] == {}
    assert set(SQL_DAGS) <= set(found["dags"])
    # The compliance DAGs (report, audit verification) have conventions of their own (test_evidence_dags.py).
    assert {"lethe_report", "lethe_audit_verify"} <= set(found["dags"])
    for dag_id, dag in found["dags"].items():
        if "retention" not in dag["tags"]:
            continue
        assert dag["catchup"] is False and dag["max_active_runs"] == 1, dag_id
        assert dag["schedule"] == "0 2 * * *", dag_id
        assert "lethe" in dag["tags"] and "retention" in dag["tags"], dag_id
        assert dag["params"] == ["as_of", "dry_run", "rules"], dag_id
        assert dag["doc_md"].strip().startswith("###"), dag_id
        for task_id, task in dag["tasks"].items():
            # The report is not retried: a retry cannot mend the rule that made it fail.
            assert task["owner"] == "lethe" and task["retries"] == (0 if task_id == "report" else 2), (
                f"{dag_id}.{task_id}"
            )
    crm_tasks = set(found["dags"]["lethe_crm_retention"]["tasks"])
    assert {"resolve_run", "C1.scan", "C1.validate", "C1.enforce", "C1.summarise", "K1.scan", "report"} <= crm_tasks


def test_a_broken_policy_is_an_import_error_not_a_run(airflow_env, tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    data["rules"][4]["period"] = "3 yrs"
    bad = tmp_path / "retention.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True))
    found, _ = run_runner({**airflow_env, "LETHE_POLICY_FILE": str(bad)}, "inspect")
    assert "lethe_crm_retention" not in found["dags"]
    message = " ".join(found["errors"].values())
    assert str(bad) in message and "rule C1" in message and "field period" in message


def test_dag_files_parse_without_heavy_imports():
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in ('lethe.db', 'lethe.sources.base', 'lethe.runner', 'pandas', 'great_expectations', 'faker') if m in sys.modules))"
    )
    for dag_file in sorted((REPO / "dags").glob("lethe_*.py")):
        out = subprocess.run(
            [sys.executable, "-c", code, str(dag_file)],
            capture_output=True,
            text=True,
            env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "[]", dag_file.name


@pytest.fixture
def demo(airflow_env, tmp_path):
    as_of = datetime(2026, 11, 26)
    estate = tmp_path / "estate"
    estate.mkdir()
    urls = {name: f"sqlite:///{estate / (name + '.sqlite')}" for name in ("crm", "marketing", "audit")}
    sizes = DemoSizes(companies=80, contacts=500, subscribers=400, consents=400, web_events=800)
    crm = seed_crm(make_engine(urls["crm"]), as_of, sizes=sizes)
    seed_marketing(make_engine(urls["marketing"]), as_of, crm["emails"], sizes=sizes)
    (estate / "trials").mkdir()  # C1 asks the trial server which sign-ups' databases remain: none here
    env = {
        **airflow_env,
        "AIRFLOW_CONN_CRM": urls["crm"],
        "AIRFLOW_CONN_MARKETING": urls["marketing"],
        "AIRFLOW_CONN_LETHE_AUDIT": urls["audit"],
        "AIRFLOW_CONN_TRIALS": f"sqlite:///{estate / 'trials'}",
        "LETHE_AUDIT_KEY": TEST_KEY,
        "LETHE_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return {"as_of": as_of, "urls": urls, "env": env, "reports": tmp_path / "reports", "crm": crm}


def snapshots(urls):
    return (snapshot(make_engine(urls["crm"]), CRM_TABLES), snapshot(make_engine(urls["marketing"]), MARKETING_TABLES))


def run_dags(demo, conf=None):
    conf = {"as_of": demo["as_of"].date().isoformat(), **(conf or {})}
    outputs = {}
    for dag_id in SQL_DAGS:
        result, output = run_runner(demo["env"], "test", dag_id, demo["as_of"].isoformat(), json.dumps(conf))
        outputs[dag_id] = (result, output)
    return outputs


def test_nightly_dags_end_to_end_leave_exactly_the_expected_records(demo):
    crm_before, marketing_before = snapshots(demo["urls"])
    crm_expected, marketing_expected = expected(crm_before, marketing_before, demo["as_of"], TEST_KEY)

    outputs = run_dags(demo)
    for _dag_id, (result, output) in outputs.items():
        assert result["state"] == "success", output[-4000:]
    crm_after, marketing_after = snapshots(demo["urls"])
    assert crm_after == crm_expected
    assert marketing_after == marketing_expected

    latest = json.loads((demo["reports"] / "latest" / "report.json").read_text())
    by_rule = {r["rule"]: r for r in latest["rules"]}
    assert sorted(by_rule) == ["C1", "K1", "N1", "W1", "W2"]
    assert by_rule["C1"]["deleted"] == len(crm_before["contacts"]) - len(crm_after["contacts"])
    assert by_rule["K1"]["period_is_default"] is True and by_rule["C1"]["period_is_default"] is False
    assert all(r["remaining_after"] == 0 and r["status"] == "ok" for r in latest["rules"])
    assert (demo["reports"] / "latest" / "report.html").exists()
    assert AuditTrail(make_engine(demo["urls"]["audit"]), TEST_KEY).verify().ok

    # No personal data of the estate in the audit trail, the reports or the task logs.
    audit_dump = Path(demo["urls"]["audit"].removeprefix("sqlite:///")).read_bytes().decode("latin-1").lower()
    reports = " ".join(p.read_text() for p in demo["reports"].rglob("report.*")).lower()
    logs = " ".join(output for _, output in outputs.values()).lower()
    personal = set()
    for row in crm_before["contacts"].values():
        personal.update(v for v in (row["email"], row["phone"], f"{row['first_name']} {row['last_name']}") if v)
    for row in marketing_before["newsletter_subscribers"].values():
        personal.add(row["email"])
    for row in marketing_before["cookie_consents"].values():
        personal.add(row["ip_address"])
    for row in marketing_before["web_events"].values():
        personal.add(row["ip_address"])
    for value in personal:
        value = value.lower()
        assert value not in audit_dump and value not in reports and value not in logs, "personal data leaked"

    # A second run changes nothing.
    second = run_dags(demo)
    assert all(result["state"] == "success" for result, _ in second.values())
    assert snapshots(demo["urls"]) == (crm_after, marketing_after)
    latest = json.loads((demo["reports"] / "latest" / "report.json").read_text())
    assert all(r["deleted"] == 0 and r["anonymised"] == 0 for r in latest["rules"])


def test_a_missing_audit_key_stops_the_run_before_anything_changes(demo):
    env = {k: v for k, v in demo["env"].items() if k != "LETHE_AUDIT_KEY"}
    before = snapshots(demo["urls"])
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "dag_runner.py"),
            "test",
            "lethe_crm_retention",
            demo["as_of"].isoformat(),
            "{}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "no audit key" in proc.stdout + proc.stderr
    assert snapshots(demo["urls"]) == before


def test_dry_run_param_and_rule_selection(demo):
    before = snapshots(demo["urls"])
    outputs = run_dags(demo, {"dry_run": True, "rules": []})
    assert all(result["state"] == "success" for result, _ in outputs.values())
    assert snapshots(demo["urls"]) == before
    latest = json.loads((demo["reports"] / "latest" / "report.json").read_text())
    assert latest["dry_run"] is True and latest["rules"] == []  # no real run yet
    assert sum(r["deleted"] for r in latest["dry_rules"]) > 0

    result, output = run_runner(
        demo["env"],
        "test",
        "lethe_crm_retention",
        demo["as_of"].isoformat(),
        json.dumps({"as_of": "2026-11-26", "rules": ["K1"]}),
    )
    assert result["state"] == "success", output[-3000:]
    assert result["tasks"]["C1.enforce"].endswith("skipped") and result["tasks"]["K1.enforce"].endswith("success")
    crm_after, _ = snapshots(demo["urls"])
    assert len(crm_after["contacts"]) == len(before[0]["contacts"])  # C1 did not run, K1 only anonymises

    # The rules param offers the DAG's rule ids only: an unknown one is refused before a run exists.
    before = snapshots(demo["urls"])
    bad = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "dag_runner.py"),
            "test",
            "lethe_crm_retention",
            demo["as_of"].isoformat(),
            json.dumps({"rules": ["C9"]}),
        ],
        env=demo["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode != 0 and "'C9' is not one of ['C1', 'K1']" in bad.stdout + bad.stderr
    assert snapshots(demo["urls"]) == before


def test_a_failed_rule_fails_fast_and_the_report_says_why(demo, tmp_path):
    """A name the database lacks stops its rule only; neither it nor the report task retries."""
    from test_config import inventory_copy

    folder = inventory_copy(
        tmp_path, "marketing.yaml", lambda d: d["rules"][1]["trigger"]["latest_of"][0].update(column="cookie_stored_at")
    )
    env = {**demo["env"], "LETHE_INVENTORY_DIR": str(folder)}
    result, output = run_runner(
        env, "test", "lethe_marketing_retention", demo["as_of"].isoformat(), json.dumps({"as_of": "2026-11-26"})
    )
    assert result["state"].endswith("failed")
    assert result["tasks"]["W1.scan"].endswith("failed") and result["tries"]["W1.scan"] == 1
    assert result["tasks"]["report"].endswith("failed") and result["tries"]["report"] == 1
    assert result["tasks"]["N1.summarise"].endswith("success") and result["tasks"]["W2.summarise"].endswith("success")
    report = json.loads(next((demo["reports"] / "lethe_marketing_retention").glob("*/report.json")).read_text())
    w1 = next(r for r in report["rules"] if r["rule"] == "W1")
    assert w1["status"] == "failed"
    assert w1["error"].startswith("rule W1: inventory source 'marketing' does not match")
    assert "column web_events.cookie_stored_at does not exist" in w1["error"]


def test_the_checks_stop_a_rule_on_bad_data_and_catch_a_run_that_left_data(demo):
    """W2: a third of the consent dates are not dates, far over the share: its validate task fails
    at once and nothing of W2 changes. W1: a trigger in the database silently ignores deletes, so
    enforcement "deletes" rows that stay: the check after fails W1's summarise task. N1 is kept."""
    from sqlalchemy import text

    marketing = make_engine(demo["urls"]["marketing"])
    with marketing.begin() as conn:
        conn.execute(text("UPDATE cookie_consents SET consented_at = 'last year' WHERE id % 3 = 0"))
        conn.execute(text("CREATE TRIGGER keep_events BEFORE DELETE ON web_events BEGIN SELECT RAISE(IGNORE); END"))

    def consents():
        with marketing.connect() as conn:
            return conn.execute(text("SELECT id, CAST(consented_at AS TEXT) FROM cookie_consents ORDER BY id")).all()

    consents_before = consents()
    result, output = run_runner(
        demo["env"], "test", "lethe_marketing_retention", demo["as_of"].isoformat(), json.dumps({"as_of": "2026-11-26"})
    )
    assert result["state"].endswith("failed")
    assert result["tasks"]["W2.validate"].endswith("failed") and result["tries"]["W2.validate"] == 1
    assert result["tasks"]["W2.enforce"].endswith("upstream_failed")
    assert result["tasks"]["W1.validate"].endswith("success") and result["tasks"]["W1.summarise"].endswith("failed")
    assert result["tasks"]["N1.summarise"].endswith("success")
    assert consents() == consents_before
    report_file = next((demo["reports"] / "lethe_marketing_retention").glob("*/report.json"))
    by_rule = {r["rule"]: r for r in json.loads(report_file.read_text())["rules"]}
    assert by_rule["W2"]["status"] == "failed" and by_rule["W2"]["checks"]["before"] == "stopped"
    assert "rows of cookie_consents" in by_rule["W2"]["error"] and "trigger_unparseable" in by_rule["W2"]["error"]
    assert by_rule["W1"]["checks"]["after"] == "failed" and by_rule["W1"]["remaining_after"] > 0
    assert by_rule["N1"]["checks"] == {**by_rule["N1"]["checks"], "before": "passed", "after": "passed"}
    assert (report_file.parent / "data_docs" / "index.html").exists()
    assert (report_file.parent / "validation" / "W1.after.json").exists()
    assert "W2 checks before: STOPPED" in output and "W1 check after (W1.after): failed" in output


def test_until_a_source_is_armed_every_run_is_a_dry_run(demo):
    """Scheduled or manual, with dry_run false: an unarmed source changes nothing, and says so."""
    from sqlalchemy import select

    from lethe.audit import audit_table

    env = {k: v for k, v in demo["env"].items() if k != "AIRFLOW_VAR_LETHE_ARMED_SOURCES"}
    before = snapshots(demo["urls"])
    result, output = run_runner(
        env,
        "test",
        "lethe_marketing_retention",
        demo["as_of"].isoformat(),
        json.dumps({"as_of": "2026-11-26", "dry_run": False}),
    )
    assert result["state"] == "success", output[-3000:]
    assert snapshots(demo["urls"]) == before
    assert "DRY RUN: enforcement is not armed for source marketing" in output
    report = json.loads(next((demo["reports"] / "lethe_marketing_retention").glob("*/report.json")).read_text())
    assert report["dry_run"] is True and report["dry_run_reason"] == "not_armed" and report["armed"] is False
    assert sum(r["deleted"] for r in report["rules"]) > 0  # what would have gone
    engine = make_engine(demo["urls"]["audit"])
    with engine.connect() as conn:
        actions = set(conn.execute(select(audit_table.c.action).where(audit_table.c.source == "marketing")).scalars())
    assert "would_deleted" in actions and "deleted" not in actions and "armed" not in actions

    # Armed (here through the Variable, as the UI sets it): the next run enforces, and the
    # switch is recorded before anything changes.
    armed_env = {**env, "AIRFLOW_VAR_LETHE_ARMED_SOURCES": '["marketing"]'}
    result, output = run_runner(
        armed_env, "test", "lethe_marketing_retention", demo["as_of"].isoformat(), json.dumps({"as_of": "2026-11-26"})
    )
    assert result["state"] == "success", output[-3000:]
    assert snapshots(demo["urls"])[1] != before[1]
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_table.c.seq, audit_table.c.action, audit_table.c.details)
            .where(audit_table.c.source == "marketing", audit_table.c.action.in_(["armed", "deleted"]))
            .order_by(audit_table.c.seq)
        ).all()
    assert rows[0].action == "armed" and "Airflow Variable" in json.loads(rows[0].details)["by"]
    assert {r.action for r in rows[1:]} == {"deleted"}
    newest = max((demo["reports"] / "lethe_marketing_retention").glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(newest.read_text())
    assert report["dry_run"] is False and report["armed"] is True and report["first_armed_run"] is True

"""The consolidated report against the audit trail, over a seeded history of several nights.

Five nights on SQLite, PostgreSQL and MariaDB, each night every rule of every source run through
the runner the DAGs use, its run report written and its outcome recorded as the DAGs' report task
does: 22 November all well, 23 November missed (nothing ran), 24 November rule W1 failed (its task
never finished), 25 November all well. The report of each day is built from the audit trail alone
and compared with the trail read independently (per-record entries added up in SQL and Python, not
through the evidence package), and with the run reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from test_audit import tamper

from lethe.audit import AuditTrail, audit_table
from lethe.config import load_inventory, load_policy
from lethe.demo.seed import DemoSizes, seed_crm, seed_marketing
from lethe.evidence.crosscheck import crosscheck
from lethe.evidence.daily import build_daily, chain_state
from lethe.evidence.forecast import forecast
from lethe.evidence.outcomes import record_outcomes
from lethe.evidence.publish import publish_daily
from lethe.report import write_run_report
from lethe.runner import run_rule
from lethe.sources.base import action_for

from conftest import TEST_KEY
from oracle import CRM_TABLES, MARKETING_TABLES, snapshot

DAGS = {
    "lethe_crm_retention": ("crm", ["C1", "K1"]),
    "lethe_marketing_retention": ("marketing", ["N1", "W1", "W2"]),
    "lethe_trials_retention": ("trials", ["T1"]),
    "lethe_weblogs_retention": ("weblogs", ["L1", "L2"]),
}
RULES = ["N1", "W1", "W2", "T1", "C1", "L1", "L2", "K1"]  # the policy's order
SEEDED = datetime(2026, 11, 26)
NIGHTS = {
    date(2026, 11, 22): (),
    # 23 November: missed, nothing runs
    date(2026, 11, 24): ("W1",),  # W1's tasks never finish
    date(2026, 11, 25): (),
}
# The numbers are compared on every back end; what does not depend on it runs on SQLite only.
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
DONE = {"deleted", "anonymised", "database_dropped", "ip_truncated", "file_deleted"}


def night(estate, day: date, reports: Path, weblogs: Path, failing=()) -> None:
    """One night as the DAGs run it: each DAG's rules, its run report, its rules' outcomes."""
    as_of = datetime.combine(day, datetime.min.time()).replace(hour=2)
    for dag_id, (source, rule_ids) in DAGS.items():
        run = {"run_id": f"scheduled__{day}T02:00:00+00:00", "as_of": as_of.isoformat(), "dry_run": False}
        run.update(source=source, rules=rule_ids)
        results, reasons = {}, {}
        for rule_id in rule_ids:
            if rule_id in failing:
                results[rule_id], reasons[rule_id] = None, "OperationalError (see the task log)"
                continue
            ctx = estate.context(as_of, run_id=run["run_id"], folder_for=lambda _conn: str(weblogs))
            ctx.dag_id = dag_id
            results[rule_id] = run_rule(ctx, rule_id)
        path, _ = write_run_report(dag_id=dag_id, run=run, results=results, root=reports, reasons=reasons)
        trail = estate.context(as_of).audit
        record_outcomes(trail, dag_id=dag_id, task_id="report", run=run, rules=json.loads(path.read_text())["rules"])


@pytest.fixture
def history(estate, tmp_path):
    sizes = DemoSizes(companies=40, contacts=250, subscribers=200, consents=200, web_events=400)
    crm = seed_crm(estate.engine("crm"), SEEDED, sizes=sizes)
    seed_marketing(estate.engine("marketing"), SEEDED, crm["emails"], sizes=sizes)
    personal = set()
    for table in snapshot(estate.engine("crm"), CRM_TABLES)["contacts"].values():
        full_name = f"{table['first_name']} {table['last_name']}"
        personal.update(v for v in (table["email"], table["phone"], full_name) if v)
    marketing = snapshot(estate.engine("marketing"), MARKETING_TABLES)
    personal.update(row["email"] for row in marketing["newsletter_subscribers"].values())
    personal.update(row["ip_address"] for row in marketing["web_events"].values() if row["ip_address"])
    weblogs = tmp_path / "weblogs"
    weblogs.mkdir()
    reports = tmp_path / "reports"
    for day, failing in NIGHTS.items():
        night(estate, day, reports, weblogs, failing)
    trail = AuditTrail(estate.engine("lethe_audit"), TEST_KEY)
    return {"trail": trail, "reports": reports, "weblogs": weblogs, "personal": personal, "estate": estate}


def audited_removals(trail: AuditTrail) -> dict[tuple[str, str], int]:
    """Records acted on per (rule, day), read straight from the chain's per-record entries."""
    found: dict[tuple[str, str], int] = defaultdict(int)
    with trail.engine.connect() as conn:
        rows = conn.execute(
            select(audit_table.c.rule_id, audit_table.c.as_of, audit_table.c.details).where(
                audit_table.c.action.in_(DONE), audit_table.c.dry_run.is_(False)
            )
        )
        for rule_id, as_of, details in rows:
            found[(rule_id, as_of.date().isoformat())] += json.loads(details).get("rows", 1)
    return found


def test_report_numbers_equal_the_audit_trail_over_several_nights(history):
    trail, policy = history["trail"], load_policy()
    inventory = load_inventory(policy=policy)
    removals = audited_removals(trail)
    assert sum(removals.values()) > 0  # the first night acted: the comparison is not of zeros

    last = build_daily(trail, policy, inventory, date(2026, 11, 25))
    assert [rule["rule"] for rule in last["rules"]] == RULES
    assert last["verdict"]["ok"] is True and last["breaches"] == []
    assert last["chain"]["ok"] is True and last["chain"]["head_seq"] == last["chain"]["entries"] > 0
    by_rule = {rule["rule"]: rule for rule in last["rules"]}
    for rule in last["rules"]:
        trend = {point["date"]: point for point in rule["trend"]}
        assert len(rule["trend"]) == 90 and rule["trend"][-1]["date"] == "2026-11-25"
        # W1 "ran" on 24 November too: it failed, and its run recorded that it did.
        assert [d for d, p in trend.items() if p["ran"]] == ["2026-11-22", "2026-11-24", "2026-11-25"]
        assert trend["2026-11-23"]["status"] == "did_not_run"
        for day in ("2026-11-22", "2026-11-24", "2026-11-25"):
            assert trend[day]["removed"] == removals.get((rule["rule"], day), 0), (rule["rule"], day)
        assert rule["status"] == "kept" and rule["counts"]["overdue_after"] == 0
    assert by_rule["C1"]["kept_since"] == "2026-11-24"  # 23 November was missed
    assert by_rule["W1"]["kept_since"] == "2026-11-25"  # 24 November W1 failed
    assert by_rule["W1"]["trend"][-2]["status"] == "failed"
    assert by_rule["L1"]["period_source"] == "default"
    assert {d["rule"] for d in last["decisions"]} == {r.id for r in policy.rules if r.is_default}

    # The day's counts are those of the run reports of the same runs.
    for dag_id in DAGS:
        report = json.loads(next(history["reports"].glob(f"{dag_id}/scheduled__2026-11-25*/report.json")).read_text())
        for entry in report["rules"]:
            counts = by_rule[entry["rule"]]["counts"]
            assert by_rule[entry["rule"]]["run"]["run_id"] == report["run_id"]
            dropped = entry["deleted"] if entry["action"] == "drop_database" else 0
            assert (counts["deleted"] + counts["dropped"], counts["anonymised"]) == (
                entry["deleted"],
                entry["anonymised"],
            )
            assert counts["dropped"] == dropped
            assert counts["eligible"] == entry["eligible"] and counts["overdue_before"] == entry["overdue_before"]

    first = build_daily(trail, policy, inventory, date(2026, 11, 22))
    for rule in first["rules"]:
        counts = rule["counts"]
        assert counts["deleted"] + counts["dropped"] + counts["anonymised"] == removals.get(
            (rule["rule"], "2026-11-22"), 0
        )
        assert rule["kept_since"] == "2026-11-22"


@ONE_BACKEND
def test_a_missed_night_and_a_failed_rule_are_breaches(history):
    trail, policy = history["trail"], load_policy()
    inventory = load_inventory(policy=policy)
    missed = build_daily(trail, policy, inventory, date(2026, 11, 23))
    assert missed["verdict"]["ok"] is False
    assert [(b["rule"], b["kind"]) for b in missed["breaches"]] == [(r, "did_not_run") for r in RULES]
    assert missed["breaches"][0]["text"] == (
        "Rule N1 (§6.2, §9.1 (objection), newsletter subscriber (e-mail, first name, country)) did not run on "
        "2026-11-23: no run recorded anything for it in the audit trail."
    )
    assert all(rule["run"] is None and rule["kept_since"] is None for rule in missed["rules"])

    failed = build_daily(trail, policy, inventory, date(2026, 11, 24))
    assert [(b["rule"], b["kind"]) for b in failed["breaches"]] == [("W1", "failed")]
    assert "OperationalError" in failed["breaches"][0]["text"]
    assert failed["verdict"]["headline"].startswith("1 breach on 2026-11-24: Rule W1")
    w1 = next(rule for rule in failed["rules"] if rule["rule"] == "W1")
    assert (
        w1["status"] == "failed"
        and w1["counts"]["deleted"] == 0
        and w1["run"]["run_id"].startswith("scheduled__2026-11-24")
    )


@ONE_BACKEND
def test_the_reports_and_the_trail_agree_both_ways(history):
    trail, reports = history["trail"], history["reports"]
    inventory = load_inventory()
    found = crosscheck(trail, reports, inventory)
    assert found.findings == []
    assert found.reports == 12 and found.rule_runs == 8 * 3

    # A count edited in a report file, and a report lost: both are named.
    path = next(reports.glob("lethe_crm_retention/scheduled__2026-11-22*/report.json"))
    report = json.loads(path.read_text())
    c1 = next(r for r in report["rules"] if r["rule"] == "C1")
    c1["deleted"] += 1
    path.write_text(json.dumps(report))
    lost = next(reports.glob("lethe_weblogs_retention/scheduled__2026-11-25*/report.json"))
    lost.unlink()
    found = crosscheck(trail, reports, inventory)
    assert found.findings[0] == (
        f"{path.relative_to(reports)}: rule C1: deleted is {c1['deleted']} in the report, {c1['deleted'] - 1} in the "
        "audit trail"
    )
    assert len(found.findings) == 3
    for finding, rule_id in zip(found.findings[1:], ("L1", "L2"), strict=True):
        assert finding.startswith(
            f"run scheduled__2026-11-25T02:00:00+00:00 of lethe_weblogs_retention, rule {rule_id}: in the audit trail "
            "(entries "
        )
        assert finding.endswith(") but in no run report")


@ONE_BACKEND
def test_a_tampered_chain_is_a_breach_naming_the_first_bad_entry(history):
    trail, policy = history["trail"], load_policy()
    with tamper(trail.engine) as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == 7).values(record_count=999))
    state = chain_state(trail)
    assert (state.ok, state.first_bad_seq) == (False, 7)
    report = build_daily(trail, policy, load_inventory(policy=policy), date(2026, 11, 25))
    assert report["breaches"][-1] == {
        "rule": None,
        "kind": "chain_broken",
        "text": "The audit trail does not verify: entry 7 was changed after it was written (first bad entry: 7). "
        "Its entries cannot be relied on as evidence until this is explained.",
    }
    assert report["verdict"]["ok"] is False


@ONE_BACKEND
def test_the_forecast_counts_from_the_sources_and_changes_nothing(history):
    estate, policy = history["estate"], load_policy()
    inventory = load_inventory(policy=policy)
    before = (snapshot(estate.engine("crm"), CRM_TABLES), snapshot(estate.engine("marketing"), MARKETING_TABLES))
    with estate.engine("lethe_audit").connect() as conn:
        entries = conn.execute(select(audit_table.c.seq).order_by(audit_table.c.seq.desc()).limit(1)).scalar_one()
    since = datetime(2026, 11, 25, 2)
    found = forecast(
        policy=policy,
        inventory=inventory,
        rule_ids=RULES,
        engines=estate.engines,
        key=TEST_KEY,
        since=since,
        folder_for=lambda _conn: str(history["weblogs"]),
    )
    # The rules' own scans at the later as-ofs, run independently here.
    for rule_id in RULES:
        for days in (7, 30):
            ctx = estate.context(since + timedelta(days=days), folder_for=lambda _conn: str(history["weblogs"]))
            assert found[rule_id][str(days)] == action_for(ctx, rule_id).scan().eligible, (rule_id, days)
    assert found["W1"]["30"] >= found["W1"]["7"] > 0  # cookies keep turning 90 days old
    after = (snapshot(estate.engine("crm"), CRM_TABLES), snapshot(estate.engine("marketing"), MARKETING_TABLES))
    assert after == before
    with estate.engine("lethe_audit").connect() as conn:
        assert (
            conn.execute(select(audit_table.c.seq).order_by(audit_table.c.seq.desc()).limit(1)).scalar_one() == entries
        )


@ONE_BACKEND
def test_published_files_hold_no_personal_data(history):
    trail, policy, reports = history["trail"], load_policy(), history["reports"]
    inventory = load_inventory(policy=policy)
    report, folder = publish_daily(trail, policy, inventory, date(2026, 11, 25), reports)
    names = {p.name for p in folder.iterdir()}
    assert {"consolidated.html", "consolidated.json", "consolidated.csv", "chain-head.txt"} <= names
    assert {"register.html", "register.json", "register.csv"} <= names
    assert names <= {p.name for p in (reports / "latest").iterdir()}
    head = (reports / "latest" / "chain-head.txt").read_text()
    assert f"entry {report['chain']['head_seq']}, hash {report['chain']['head_hash']}" in head
    # An older day rebuilt later leaves latest alone.
    publish_daily(trail, policy, inventory, date(2026, 11, 22), reports)
    assert json.loads((reports / "latest" / "consolidated.json").read_text())["date"] == "2026-11-25"
    text = " ".join(p.read_text(errors="replace") for p in (reports / "daily").rglob("*.*")).lower()
    assert len(history["personal"]) > 100
    leaked = [value for value in history["personal"] if value.lower() in text]
    assert leaked == []


@ONE_BACKEND
def test_lethe_report_date_rebuilds_a_day_from_the_trail_alone(history, tmp_path):
    estate = history["estate"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN", "LETHE_"))},
        "LETHE_AUDIT_KEY": TEST_KEY,
        "AIRFLOW_CONN_LETHE_AUDIT": estate.urls["lethe_audit"],
        "LETHE_REPORTS_DIR": str(tmp_path / "rebuilt"),
    }
    cli = [sys.executable, "-m", "lethe.cli", "report", "--date"]
    ok = subprocess.run([*cli, "2026-11-25"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Every rule was kept on 2026-11-25")
    rebuilt = json.loads((tmp_path / "rebuilt" / "daily" / "2026-11-25" / "consolidated.json").read_text())
    assert rebuilt["built_from"] == "audit trail" and rebuilt["forecast"]["computed"] is False
    direct = build_daily(history["trail"], load_policy(), load_inventory(), date(2026, 11, 25))
    assert [r["counts"] for r in rebuilt["rules"]] == [r["counts"] for r in direct["rules"]]
    bad = subprocess.run([*cli, "2026-11-24"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout.startswith("1 breach on 2026-11-24: Rule W1")
    wrong = subprocess.run([*cli, "24-11-2026"], env=env, capture_output=True, text=True)
    assert wrong.returncode == 2 and "--date '24-11-2026' is not a date (YYYY-MM-DD)" in wrong.stderr

"""lethe_report and lethe_audit_verify under real Airflow (``dag.test()``), after real nights.

Night of 24 November: every rule runs and is kept (through the runner the DAGs use, with its run
reports and outcomes, as ``tests/test_evidence.py`` does: it spares four Airflow start-ups).
25 November: missed. 26
November: every nightly DAG runs under Airflow, but a trigger in the marketing database silently ignores deletes of web
events, so W1 leaves records past their deadline. The report of the 26th shows exactly that breach
(and the missed night in the trends), tells the notifier, which e-mails it to the test's SMTP
server; the weekly verification passes, and fails naming the entry once the chain is tampered with.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from sqlalchemy import text, update
from test_alerts import body_text
from test_audit import tamper
from test_dags import run_runner
from test_evidence import night as engine_night

from lethe.audit import audit_table
from lethe.db import make_engine
from lethe.demo.seed import DemoSizes, seed_crm, seed_marketing
from lethe.runner import Engines

from conftest import TEST_KEY, Estate, airflow_environment

pytestmark = pytest.mark.airflow
NIGHTLY = ["lethe_crm_retention", "lethe_marketing_retention", "lethe_trials_retention", "lethe_weblogs_retention"]
RULES = ["N1", "W1", "W2", "T1", "C1", "L1", "L2", "K1"]


@pytest.fixture(scope="module")
def evidence_env(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("evidence")
    env = airflow_environment(tmp / "airflow_home")
    estate = tmp / "estate"
    (estate / "trials").mkdir(parents=True)
    (estate / "weblogs").mkdir()
    urls = {name: f"sqlite:///{estate / (name + '.sqlite')}" for name in ("crm", "marketing", "audit")}
    sizes = DemoSizes(companies=40, contacts=200, subscribers=150, consents=150, web_events=300)
    crm = seed_crm(make_engine(urls["crm"]), datetime(2026, 11, 26), sizes=sizes)
    seed_marketing(make_engine(urls["marketing"]), datetime(2026, 11, 26), crm["emails"], sizes=sizes)
    env.update(
        {
            "AIRFLOW_CONN_CRM": urls["crm"],
            "AIRFLOW_CONN_MARKETING": urls["marketing"],
            "AIRFLOW_CONN_LETHE_AUDIT": urls["audit"],
            "AIRFLOW_CONN_TRIALS": f"sqlite:///{estate / 'trials'}",
            "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(estate / "weblogs")}}),
            "LETHE_AUDIT_KEY": TEST_KEY,
            "LETHE_REPORTS_DIR": str(tmp / "reports"),
        }
    )
    return {"env": env, "urls": urls, "reports": tmp / "reports", "crm": crm, "weblogs": estate / "weblogs"}


def night(env, day: str) -> dict[str, dict]:
    conf = json.dumps({"as_of": f"{day}T02:00:00+00:00"})
    return {dag_id: run_runner(env, "test", dag_id, f"{day}T02:00:00", conf)[0] for dag_id in NIGHTLY}


def smtp(env, server) -> dict[str, str]:
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": server.port,
        "extra": {
            "disable_tls": True,
            "disable_ssl": True,
            "retry_limit": 0,
            "from_email": "lethe@example.test",
            "to": "dpo@example.test",
        },
    }
    return {**env, "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(connection)}


def test_the_report_dag_shows_the_breach_and_the_verify_dag_catches_tampering(evidence_env, smtp_server):
    env = evidence_env["env"]
    urls = {**evidence_env["urls"], "lethe_audit": evidence_env["urls"]["audit"], "trials": env["AIRFLOW_CONN_TRIALS"]}
    estate = Estate(urls, Engines(resolve=lambda conn_id: urls[conn_id]))
    try:
        engine_night(estate, date(2026, 11, 24), evidence_env["reports"], evidence_env["weblogs"])
    finally:
        estate.engines.dispose()
    with make_engine(evidence_env["urls"]["marketing"]).begin() as conn:
        conn.execute(text("CREATE TRIGGER keep_events BEFORE DELETE ON web_events BEGIN SELECT RAISE(IGNORE); END"))
    third = night(env, "2026-11-26")
    assert third["lethe_marketing_retention"]["tasks"]["W1.summarise"].endswith("failed")
    assert all(third[dag]["state"] == "success" for dag in NIGHTLY if dag != "lethe_marketing_retention")

    env = smtp(env, smtp_server)
    result, output = run_runner(env, "test", "lethe_report", "2026-11-26T07:00:00", json.dumps({"date": "2026-11-26"}))
    assert result["state"] == "success", output[-3000:]
    assert set(result["tasks"]) == {"report_day", "chain_head", "forecast_rules", "write_report", "alert_on_breaches"}
    report = json.loads((evidence_env["reports"] / "latest" / "consolidated.json").read_text())
    assert report["date"] == "2026-11-26" and report["built_from"] == "audit trail and sources"
    assert [(b["rule"], b["kind"]) for b in report["breaches"]] == [("W1", "overdue_after")]
    by_rule = {rule["rule"]: rule for rule in report["rules"]}
    assert list(by_rule) == RULES
    w1 = by_rule["W1"]
    assert w1["status"] == "breach" and w1["counts"]["overdue_after"] > 0 and w1["checks"]["after"] == "failed"
    assert report["breaches"][0]["text"].endswith(
        f"left {w1['counts']['overdue_after']} records past their deadline after its run {w1['run']['run_id']}."
    )
    assert w1["run"]["dag_id"] == "lethe_marketing_retention"
    # The missed night is in every rule's trend; the rules kept on the 26th are kept since then.
    for rule in report["rules"]:
        trend = {point["date"]: point["status"] for point in rule["trend"]}
        assert trend["2026-11-25"] == "did_not_run" and trend["2026-11-24"] == "kept", rule["rule"]
        if rule["rule"] != "W1":
            assert rule["status"] == "kept" and rule["kept_since"] == "2026-11-26"
        assert set(rule["forecast"]) == {"7", "30"}
    assert by_rule["W1"]["forecast"]["7"] >= by_rule["W1"]["counts"]["overdue_after"]
    assert (evidence_env["reports"] / "latest" / "register.html").exists()
    assert (evidence_env["reports"] / "daily" / "2026-11-26" / "consolidated.html").exists()
    assert f"entry {report['chain']['head_seq']}" in (evidence_env["reports"] / "latest" / "chain-head.txt").read_text()

    mails = [m for m in smtp_server.messages if m["Subject"].startswith("[Lethe] breach")]
    assert [m["Subject"] for m in mails] == [
        "[Lethe] breach of the retention policy: 1 breach(es) of the retention policy on 2026-11-26"
    ]
    assert report["breaches"][0]["text"] in body_text(mails[0])
    assert "LETHE ALERT [breach]" in output

    verified, output = run_runner(env, "test", "lethe_audit_verify", "2026-11-29T05:00:00", "{}")
    assert verified["state"] == "success", output[-3000:]
    assert "cross-check: 8 run report(s) and 16 rule run(s) agree" in output

    with tamper(make_engine(evidence_env["urls"]["audit"])) as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == 12).values(record_count=12345))
    broken, output = run_runner(env, "test", "lethe_audit_verify", "2026-12-06T05:00:00", "{}")
    assert broken["state"].endswith("failed")
    assert broken["tasks"]["verify_chain"].endswith("failed") and broken["tries"]["verify_chain"] == 1
    assert "audit trail broken at entry 12: entry 12 was changed after it was written" in output
    subjects = [m["Subject"] for m in smtp_server.messages]
    assert (
        "[Lethe] audit verification failed: audit trail broken at entry 12: entry 12 was changed after it was written"
        in subjects
    )


SETTINGS = """
import json, os
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
report, verify = bag.dags["lethe_report"], bag.dags["lethe_audit_verify"]
outlets = {d: [o.name for t in bag.dags[d].tasks for o in t.outlets] for d in bag.dags if d.endswith("_retention")}
deadlines = {d: [(type(a.reference).__name__, a.interval.total_seconds(), a.callback.path) for a in bag.dags[d].deadline or []]
             for d in bag.dags if d.endswith("_retention")}
print("RESULT " + json.dumps({
    "cron": report.timetable.timetable.expression, "tz": str(report.timetable.timetable.timezone),
    "assets": sorted(a.name for a in report.timetable.asset_condition.objects),
    "condition": type(report.timetable.asset_condition).__name__,
    "verify": str(verify.schedule), "outlets": outlets, "deadlines": deadlines,
    "owners": sorted({t.owner for d in (report, verify) for t in d.tasks}),
    "tags": [sorted(report.tags), sorted(verify.tags)], "catchup": [report.catchup, verify.catchup],
    "params": sorted(report.params.keys()), "doc": [report.doc_md.strip()[:3], verify.doc_md.strip()[:3]],
}))
"""


def test_the_report_waits_for_every_night_and_falls_back_at_seven(evidence_env):
    import subprocess
    import sys

    env = {**evidence_env["env"], "LETHE_DEADLINE_ALERTS": "on"}  # as the scheduler parses them
    proc = subprocess.run([sys.executable, "-c", SETTINGS], env=env, capture_output=True, text=True)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    found = json.loads(line.removeprefix("RESULT "))
    assets = [f"lethe_retention_{source}" for source in ("crm", "marketing", "trials", "weblogs")]
    assert (found["cron"], found["tz"]) == ("0 7 * * *", "UTC")
    assert found["assets"] == assets and found["condition"] == "AssetAll"
    assert found["outlets"] == {
        f"lethe_{s}_retention": [f"lethe_retention_{s}"] for s in ("crm", "marketing", "trials", "weblogs")
    }
    assert found["verify"] == "0 5 * * 0"
    for dag_id, alerts in found["deadlines"].items():
        assert alerts == [["DagRunLogicalDateDeadline", 4 * 3600.0, "lethe.airflow_adapter.deadline_missed"]], dag_id
    assert found["owners"] == ["lethe"] and found["catchup"] == [False, False]
    assert found["tags"] == [["compliance", "lethe", "report"], ["audit", "compliance", "lethe"]]
    assert found["params"] == ["date", "forecast"] and found["doc"] == ["###", "###"]

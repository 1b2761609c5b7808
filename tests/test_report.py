"""Run reports and reports/latest: one entry per rule, failures and defaults shown."""

from __future__ import annotations

import json

from lethe.report import summary_text, write_run_report


def result(rule, **counts):
    base = {"rule_id": rule, "source": "crm", "action": "delete", "dry_run": False, "as_of": "2026-11-26T00:00:00",
            "eligible": 3, "deleted": 3, "anonymised": 0, "exempt_hold": 1, "exempt_restriction": 0,
            "overdue_before": 2, "remaining_after": 0, "batches": 1, "related": {}, "extra": {}, "status": "ok",
            "error": ""}
    return {**base, **counts}


def run(run_id, as_of="2026-11-26T00:00:00", **kw):
    return {"run_id": run_id, "as_of": as_of, "dry_run": False, "rules": ["C1", "K1"], "demo_key": False, **kw}


def test_a_failed_rule_is_reported_and_the_other_rule_still_counts(tmp_path):
    path, failed = write_run_report(dag_id="lethe_crm_retention", run=run("r1"),
                                    results={"C1": None, "K1": result("K1", deleted=0, anonymised=4)}, root=tmp_path)
    assert failed == ["C1"]
    report = json.loads(path.read_text())
    by_rule = {r["rule"]: r for r in report["rules"]}
    assert by_rule["C1"]["status"] == "failed" and by_rule["C1"]["deleted"] is None
    assert by_rule["K1"]["anonymised"] == 4 and by_rule["K1"]["period_is_default"] is True
    assert by_rule["K1"]["policy_section"].startswith("§6.2")
    html = (path.parent / "report.html").read_text()
    assert "failed" in html and "configured default" in html


def test_latest_gathers_the_newest_run_of_every_dag(tmp_path):
    write_run_report(dag_id="lethe_crm_retention", run=run("old", as_of="2026-11-25T00:00:00"),
                     results={"C1": result("C1", deleted=9), "K1": result("K1")}, root=tmp_path)
    write_run_report(dag_id="lethe_crm_retention", run=run("new"),
                     results={"C1": result("C1", deleted=1), "K1": result("K1")}, root=tmp_path)
    write_run_report(dag_id="lethe_marketing_retention",
                     run={**run("m", demo_key=True), "rules": ["N1"]},
                     results={"N1": result("N1", extra={"kept": 2})}, root=tmp_path)
    latest = json.loads((tmp_path / "latest" / "report.json").read_text())
    assert [(r["dag_id"], r["run_id"]) for r in latest["runs"]] == [
        ("lethe_crm_retention", "new"), ("lethe_marketing_retention", "m")]
    assert [(r["rule"], r["deleted"]) for r in latest["rules"]] == [("C1", 1), ("K1", 3), ("N1", 3)]
    assert latest["demo_key"] is True
    html = (tmp_path / "latest" / "report.html").read_text()
    assert "demo key" in html and "kept: <strong>2</strong>" in html
    text = summary_text(tmp_path)
    assert "DEMO key" in text and "C1" in text and "N1" in text

"""Run reports and reports/latest: one entry per rule, failures and defaults shown, a verdict on
top, real runs and dry runs never mixed, units on every count, no Python reprs."""

from __future__ import annotations

import html as html_text
import json
import re
from pathlib import Path

import pytest

from lethe.report import counted, refresh_latest, render_html, summary_text, unit_for, verdict, write_run_report


def result(rule, **counts):
    base = {
        "rule_id": rule,
        "source": "crm",
        "action": "delete",
        "dry_run": False,
        "as_of": "2026-11-26T00:00:00",
        "eligible": 3,
        "deleted": 3,
        "anonymised": 0,
        "exempt_hold": 1,
        "exempt_restriction": 0,
        "overdue_before": 2,
        "remaining_after": 0,
        "batches": 1,
        "related": {},
        "extra": {},
        "status": "ok",
        "error": "",
    }
    return {**base, **counts}


def run(run_id, as_of="2026-11-26T00:00:00", **kw):
    return {"run_id": run_id, "as_of": as_of, "dry_run": False, "rules": ["C1", "K1"], "demo_key": False, **kw}


def entry(rule, action="delete", **counts):
    """A rule entry as a report holds it (what :func:`verdict` reads)."""
    unit = unit_for(action)
    return {
        "rule": rule,
        "action": action,
        "unit": unit,
        "status": "ok",
        "error": "",
        "eligible": 0,
        "deleted": 0,
        "anonymised": 0,
        "exempt_hold": 0,
        "exempt_restriction": 0,
        "overdue_before": 0,
        "remaining_after": 0,
        **counts,
    }


def set_generated_at(root: Path, dag_id: str, run_id: str, when: str) -> None:
    """Pretend a report was written at ``when`` (the tests write several in the same second)."""
    path = root / dag_id / run_id / "report.json"
    data = json.loads(path.read_text())
    data["generated_at"] = when
    path.write_text(json.dumps(data))


def section(html: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', html, re.S)
    return found.group(1) if found else ""


def verdict_line(html: str) -> str:
    found = re.search(r'<span class="verdict-text">(.*?)</span>', html, re.S)
    return html_text.unescape(found.group(1)) if found else ""


def read_latest(root: Path) -> tuple[dict, str]:
    return (json.loads((root / "latest" / "report.json").read_text()), (root / "latest" / "report.html").read_text())


# --------------------------------------------------------------------------- run reports


def test_a_failed_rule_is_reported_and_the_other_rule_still_counts(tmp_path):
    path, failed = write_run_report(
        dag_id="lethe_crm_retention",
        run=run("r1"),
        results={"C1": None, "K1": result("K1", deleted=0, anonymised=4)},
        root=tmp_path,
    )
    assert failed == ["C1"]
    report = json.loads(path.read_text())
    by_rule = {r["rule"]: r for r in report["rules"]}
    assert by_rule["C1"]["status"] == "failed" and by_rule["C1"]["deleted"] is None
    assert by_rule["K1"]["anonymised"] == 4 and by_rule["K1"]["period_is_default"] is True
    assert by_rule["K1"]["policy_section"].startswith("§6.2")
    assert report["verdict"]["level"] == "failed"
    assert report["verdict"]["text"].startswith("Rule C1 did not run: the rule's tasks did not finish")
    html = (path.parent / "report.html").read_text()
    assert "failed" in html and "configured default" in html
    assert verdict_line(html) == report["verdict"]["text"]


def test_a_run_report_carries_the_run_keys_and_the_policy_description(tmp_path):
    path, _ = write_run_report(
        dag_id="lethe_crm_retention",
        run=run("r1", source="crm", armed=True, dry_run_reason=None, first_armed_run=False),
        results={"C1": result("C1"), "K1": result("K1")},
        root=tmp_path,
    )
    report = json.loads(path.read_text())
    assert (report["source"], report["armed"], report["dry_run_reason"], report["first_armed_run"]) == (
        "crm",
        True,
        None,
        False,
    )
    assert {r["unit"] for r in report["rules"]} == {"records"}
    html = (path.parent / "report.html").read_text()
    assert "Contact persons at prospects and their interactions are deleted 3 years after the last contact." in html
    assert "enforcement armed for source crm" in html
    assert 'class="dry-banner"' not in html


# --------------------------------------------------------------------------- the verdict


def test_verdict_every_rule_kept():
    found = verdict([entry("C1", deleted=3, eligible=3), entry("K1", "anonymise")])
    assert found == ("Every rule was kept: nothing past its deadline remains.", "ok")
    assert found.text == found[0] and found.level == "ok"


def test_verdict_breach_names_the_rule_and_what_remains():
    found = verdict([entry("C1", remaining_after=3, status="incomplete"), entry("K1", "anonymise")])
    assert found.level == "breach"
    assert found.text == (
        "Rule C1 broke the policy: 3 records past their deadline remain after the run. The other rules were kept."
    )
    one = verdict([entry("T1", "drop_database", remaining_after=1)])
    assert one.text == "Rule T1 broke the policy: 1 database past its deadline remains after the run."
    # A status other than ok breaks the policy too, even with nothing counted as remaining.
    odd = verdict([entry("W2", status="incomplete", error="verify did not finish")])
    assert odd == ("Rule W2 broke the policy: it ended incomplete: verify did not finish.", "breach")


def test_verdict_failed_says_the_rule_did_not_run_and_why():
    found = verdict(
        [
            entry(
                "W1",
                status="failed",
                error="rule W1: column web_events.cookie_stored_at does not exist",
                eligible=None,
                deleted=None,
                remaining_after=None,
            ),
            entry("W2"),
            entry("C1", remaining_after=2),
        ]
    )
    assert found.level == "failed"
    assert found.text == (
        "Rule W1 did not run: rule W1: column web_events.cookie_stored_at does not exist. "
        "Rule C1 broke the policy: 2 records past their deadline remain after the run. "
        "The other rules were kept."
    )


def test_verdict_dry_run_says_nothing_changed_and_what_would_be_removed():
    rules = [entry("C1", eligible=10, deleted=10, remaining_after=10), entry("W1", eligible=2, remaining_after=2)]
    assert verdict(rules, dry_run=True) == ("Dry run: nothing was changed; 12 records would be removed.", "dry")
    # remaining_after > 0 is no breach on a dry run; units and anonymising actions are said as such.
    mixed = verdict(
        [
            entry("T1", "drop_database", eligible=2),
            entry("L1", "truncate_ip", eligible=4),
            entry("L2", "delete_file", eligible=1),
            entry("K1", "anonymise", eligible=5),
        ],
        dry_run=True,
    )
    assert mixed == (
        "Dry run: nothing was changed; 2 databases and 1 file would be removed and "
        "5 records and 4 files would be anonymised.",
        "dry",
    )
    nothing = verdict([entry("C1")], dry_run=True)
    assert nothing.text == "Dry run: nothing was changed; nothing would be removed."
    failed = verdict([entry("C1", eligible=1), entry("W1", status="failed", error="no such table.")], dry_run=True)
    assert failed == (
        "Dry run: nothing was changed; 1 record would be removed. Rule W1 did not run: no such table.",
        "failed",
    )


def test_verdict_counts_the_backlog_and_the_first_enforcing_run_clears_it():
    rules = [entry("C1", overdue_before=40, deleted=41, eligible=41), entry("T1", "drop_database", overdue_before=2)]
    assert verdict(rules, first_armed_run=True) == (
        "Every rule was kept: nothing past its deadline remains. First enforcing run: the backlog was cleared "
        "(40 records and 2 databases already past their deadline were removed).",
        "ok",
    )
    assert verdict(rules).text == (
        "Every rule was kept: nothing past its deadline remains. 40 records and 2 databases were already past "
        "their deadline when the run began (a missed or failed night) and were removed."
    )
    assert verdict([entry("C1")], first_armed_run=True).text.endswith("there was no backlog to clear.")
    assert verdict([]) == ("No rule has run yet: nothing was enforced.", "none")


def test_units_follow_the_policy_action():
    assert {a: unit_for(a) for a in ("delete", "anonymise", "drop_database", "truncate_ip", "delete_file")} == {
        "delete": "records",
        "anonymise": "records",
        "drop_database": "databases",
        "truncate_ip": "files",
        "delete_file": "files",
    }
    assert (counted(1, "databases"), counted(0, "files"), counted(3, "records")) == (
        "1 database",
        "0 files",
        "3 records",
    )


def test_every_count_has_its_unit_and_the_detail_is_in_words(tmp_path):
    orphans = [f"trial_orphan_{i:02d}" for i in range(25)]
    path, _ = write_run_report(
        dag_id="lethe_trials_retention",
        run={**run("t"), "rules": ["T1"]},
        results={
            "T1": result(
                "T1",
                action="drop_database",
                eligible=2,
                deleted=2,
                overdue_before=0,
                related={"plannings": 12, "resources": 3},
                extra={
                    "orphan_names": orphans,
                    "next_due": None,
                    "kept_converted": 1,
                    "refused_names": ["'bad name'"],
                    "waiting": 2,
                    "kept_recorded": 1,
                    "flags": {"a": True},
                },
            )
        },
        root=tmp_path,
    )
    html = (path.parent / "report.html").read_text()
    assert '2 <span class="u">databases</span>' in html and '1 <span class="u">database</span>' in html
    assert "counts in databases" in html
    assert "rows in the dropped databases: <strong>plannings 12, resources 3</strong>" in html
    assert "trial_orphan_00, trial_orphan_01" in html and "and 15 more" in html and "trial_orphan_24" not in html
    assert "next due (UTC date): <strong>none</strong>" in html
    assert "waiting for another rule to act first: <strong>2 databases</strong>" in html
    assert "kept (recorded): <strong>1 database</strong>" in html
    plain = html_text.unescape(html)
    assert "'bad name'" in plain
    for repr_mark in ("['", "{'", "']", "'}", "[]", "{}", "None", "True", "False"):
        assert repr_mark not in plain, repr_mark

    logs, _ = write_run_report(
        dag_id="lethe_weblogs_retention",
        run={**run("w"), "rules": ["L1", "L2"]},
        results={
            "L1": result(
                "L1",
                deleted=0,
                anonymised=3,
                eligible=3,
                overdue_before=0,
                extra={"addresses_truncated": 40, "files_skipped_done": 1},
            ),
            "L2": result("L2", deleted=1, eligible=1, overdue_before=0),
        },
        root=tmp_path,
    )
    html = (logs.parent / "report.html").read_text()
    assert '3 <span class="u">files</span>' in html and '1 <span class="u">file</span>' in html
    assert "addresses truncated: <strong>40</strong>" in html and "files skipped done: <strong>1</strong>" in html
    assert '<span class="u">record' not in html and "counts in files" in html


def test_legend_and_backlog_are_explained(tmp_path):
    path, _ = write_run_report(
        dag_id="lethe_crm_retention",
        run=run("r"),
        results={"C1": result("C1", overdue_before=5), "K1": result("K1", remaining_after=1, status="incomplete")},
        root=tmp_path,
    )
    html = (path.parent / "report.html").read_text()
    assert "past deadline at the run&#39;s start (backlog)" in html
    assert "already past their deadline when the run began" in html and "The run removed them" in html
    assert "red: broke the policy" in html and "amber: backlog" in html and "no colour: kept on time" in html
    assert '<tr class="backlog">' in html and '<tr class="bad">' in html
    assert "kept: backlog of 5 records removed" in html


def test_the_first_enforcing_run_is_labelled_and_its_verdict_says_the_backlog_was_cleared(tmp_path):
    path, _ = write_run_report(
        dag_id="lethe_crm_retention",
        run=run("first", source="crm", armed=True, first_armed_run=True),
        results={"C1": result("C1", overdue_before=40, deleted=41, eligible=41), "K1": result("K1", overdue_before=0)},
        root=tmp_path,
    )
    report = json.loads(path.read_text())
    assert report["verdict"] == {
        "level": "ok",
        "text": (
            "Every rule was kept: nothing past its deadline remains. First enforcing run: the backlog was cleared "
            "(40 records already past their deadline were removed)."
        ),
    }
    html = (path.parent / "report.html").read_text()
    assert "first enforcing run: clearing the backlog" in html.lower()
    latest, latest_html = read_latest(tmp_path)
    assert latest["runs"][0]["first_armed_run"] is True
    assert "first enforcing run: clearing the backlog" in section(latest_html, "real-runs")
    assert "backlog was cleared" in latest["verdict"]["text"]


def test_dry_run_reason_in_words(tmp_path):
    path, _ = write_run_report(
        dag_id="lethe_crm_retention",
        run=run("d1", dry_run=True, source="crm", armed=False, dry_run_reason="not_armed"),
        results={
            "C1": result("C1", eligible=12, deleted=12, remaining_after=12, overdue_before=0),
            "K1": result("K1", eligible=0, deleted=0, remaining_after=0),
        },
        root=tmp_path,
    )
    html = (path.parent / "report.html").read_text()
    assert "dry run because the source is not armed yet: arm it with <code>lethe arm crm</code>" in html
    assert verdict_line(html) == "Dry run: nothing was changed; 12 records would be removed."
    assert "DRY RUN: nothing was changed" in section(html, "dry-runs")
    path, _ = write_run_report(
        dag_id="lethe_crm_retention",
        run=run("d2", dry_run=True, dry_run_reason="requested"),
        results={"C1": result("C1"), "K1": result("K1")},
        root=tmp_path,
    )
    assert "dry run requested" in (path.parent / "report.html").read_text()


# --------------------------------------------------------------------------- reports/latest


def test_latest_gathers_the_newest_run_of_every_dag(tmp_path):
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("old", as_of="2026-11-25T00:00:00"),
        results={"C1": result("C1", deleted=9), "K1": result("K1")},
        root=tmp_path,
    )
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("new"),
        results={"C1": result("C1", deleted=1), "K1": result("K1")},
        root=tmp_path,
    )
    write_run_report(
        dag_id="lethe_marketing_retention",
        run={**run("m", demo_key=True), "rules": ["N1"]},
        results={"N1": result("N1", extra={"kept": 2})},
        root=tmp_path,
    )
    latest = json.loads((tmp_path / "latest" / "report.json").read_text())
    assert [(r["dag_id"], r["run_id"]) for r in latest["runs"]] == [
        ("lethe_crm_retention", "new"),
        ("lethe_marketing_retention", "m"),
    ]
    assert [(r["rule"], r["deleted"]) for r in latest["rules"]] == [("C1", 1), ("K1", 3), ("N1", 3)]
    assert latest["demo_key"] is True
    assert latest["dry_run"] is False and latest["dry_runs"] == [] and latest["dry_rules"] == []
    html = (tmp_path / "latest" / "report.html").read_text()
    assert "demo key" in html and "kept: <strong>2</strong>" in html
    text = summary_text(tmp_path)
    assert "DEMO key" in text and "C1" in text and "N1" in text


def test_latest_takes_the_newest_real_run_by_run_time_not_by_as_of(tmp_path):
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("nightly", as_of="2026-11-26T00:00:00"),
        results={"C1": result("C1"), "K1": result("K1")},
        root=tmp_path,
    )
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("rerun", as_of="2026-11-20T00:00:00"),
        results={"C1": result("C1", deleted=0), "K1": result("K1")},
        root=tmp_path,
    )
    set_generated_at(tmp_path, "lethe_crm_retention", "nightly", "2026-11-26T02:00:05+00:00")
    set_generated_at(tmp_path, "lethe_crm_retention", "rerun", "2026-11-26T09:30:00+00:00")
    latest = refresh_latest(tmp_path)
    assert [r["run_id"] for r in latest["runs"]] == ["rerun"]


def test_latest_ignores_a_future_as_of_dry_run_for_the_real_section(tmp_path):
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("real", source="crm", armed=True),
        results={"C1": result("C1", overdue_before=0), "K1": result("K1", overdue_before=0)},
        root=tmp_path,
    )
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("what-if", as_of="2027-06-01T00:00:00", dry_run=True, dry_run_reason="requested"),
        results={
            "C1": result("C1", eligible=12, deleted=12, remaining_after=12),
            "K1": result("K1", eligible=0, deleted=0, remaining_after=0),
        },
        root=tmp_path,
    )
    set_generated_at(tmp_path, "lethe_crm_retention", "real", "2026-11-26T02:00:05+00:00")
    set_generated_at(tmp_path, "lethe_crm_retention", "what-if", "2026-11-26T10:00:00+00:00")
    refresh_latest(tmp_path)
    latest, html = read_latest(tmp_path)
    assert latest["dry_run"] is False and latest["as_of"] == "2026-11-26T00:00:00"
    assert [(r["run_id"], r["dry_run"]) for r in latest["runs"]] == [("real", False)]
    assert {(r["dag_id"], r["as_of"], r["dry_run"]) for r in latest["rules"]} == {
        ("lethe_crm_retention", "2026-11-26T00:00:00", False)
    }
    assert [(r["run_id"], r["dry_run"]) for r in latest["dry_runs"]] == [("what-if", True)]
    assert {(r["rule"], r["as_of"], r["dry_run"]) for r in latest["dry_rules"]} == {
        ("C1", "2027-06-01T00:00:00", True),
        ("K1", "2027-06-01T00:00:00", True),
    }
    assert latest["verdict"] == {"level": "ok", "text": "Every rule was kept: nothing past its deadline remains."}
    assert latest["dry_verdict"]["text"] == "Dry run: nothing was changed; 12 records would be removed."
    real, dry = section(html, "real-runs"), section(html, "dry-runs")
    assert "what-if" not in real and "DRY RUN" not in real and 'class="dry-banner"' not in real
    assert "Dry runs (nothing was changed)" in dry and "DRY RUN: nothing was changed" in dry and "what-if" in dry
    assert html.count('class="dry-banner"') == 1 and html.index('id="real-runs"') < html.index('id="dry-runs"')
    assert verdict_line(html) == "Every rule was kept: nothing past its deadline remains."


def test_a_mixed_set_of_real_and_dry_dags_never_puts_a_dry_banner_over_real_rows(tmp_path):
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("crm-real"),
        results={"C1": result("C1", deleted=7, eligible=7, overdue_before=0), "K1": result("K1", overdue_before=0)},
        root=tmp_path,
    )
    write_run_report(
        dag_id="lethe_weblogs_retention",
        run={
            **run("logs-dry", dry_run=True, source="weblogs", armed=False, dry_run_reason="not_armed"),
            "rules": ["L1", "L2"],
        },
        results={
            "L1": result("L1", deleted=0, anonymised=0, eligible=4, remaining_after=4),
            "L2": result("L2", deleted=0, eligible=1, remaining_after=1),
        },
        root=tmp_path,
    )
    latest, html = read_latest(tmp_path)
    assert latest["dry_run"] is False
    assert [r["dag_id"] for r in latest["runs"]] == ["lethe_crm_retention"]
    assert [r["dag_id"] for r in latest["dry_runs"]] == ["lethe_weblogs_retention"]
    assert all(not r["dry_run"] for r in latest["rules"]) and all(r["dry_run"] for r in latest["dry_rules"])
    assert latest["no_real_run"] == ["lethe_weblogs_retention"]
    assert latest["verdict"]["text"] == (
        "Every rule was kept: nothing past its deadline remains. No real run yet for lethe_weblogs_retention: "
        "its rules are not enforced yet."
    )
    real, dry = section(html, "real-runs"), section(html, "dry-runs")
    assert "DRY RUN" not in real and 'class="dry-banner"' not in real and "logs-dry" not in real
    assert "<code>lethe_weblogs_retention</code>: no real run yet" in real
    assert "DRY RUN: nothing was changed" in dry and "L1" in dry and "C1" not in dry
    assert "arm it with <code>lethe arm weblogs</code>" in dry
    assert '4 <span class="u">files</span>' in dry
    assert latest["dry_verdict"]["text"] == (
        "Dry run: nothing was changed; 1 file would be removed and 4 files would be anonymised."
    )

    text = summary_text(tmp_path)
    lines = text.splitlines()
    assert lines[0] == "OK: " + latest["verdict"]["text"]
    real_part, _, dry_part = text.partition("Dry runs (nothing was changed)")
    assert "C1" in real_part and "L1" not in real_part and "lethe_weblogs_retention: no real run yet" in real_part
    assert "L1" in dry_part and "C1" not in dry_part and "lethe arm weblogs" in dry_part
    assert "records" in real_part and "files" in dry_part


def test_only_dry_runs_say_no_real_run_yet(tmp_path):
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("d", dry_run=True, dry_run_reason="requested"),
        results={
            "C1": result("C1", eligible=12, deleted=12, remaining_after=12),
            "K1": result("K1", eligible=0, deleted=0, remaining_after=0),
        },
        root=tmp_path,
    )
    latest, html = read_latest(tmp_path)
    assert latest["dry_run"] is True and latest["runs"] == [] and latest["rules"] == []
    assert sum(r["deleted"] for r in latest["dry_rules"]) == 12
    assert latest["verdict"]["text"] == (
        "No real run yet: nothing has been enforced. Dry run: nothing was changed; 12 records would be removed."
    )
    real = section(html, "real-runs")
    assert "no real run yet" in real and 'class="dry-banner"' not in real
    assert summary_text(tmp_path).splitlines()[0].startswith("DRY RUN: No real run yet")


def test_a_breach_in_latest_shows_in_the_verdict_and_in_red(tmp_path):
    write_run_report(
        dag_id="lethe_crm_retention",
        run=run("r"),
        results={"C1": result("C1", remaining_after=3, status="incomplete"), "K1": result("K1")},
        root=tmp_path,
    )
    latest, html = read_latest(tmp_path)
    assert latest["verdict"] == {
        "level": "breach",
        "text": (
            "Rule C1 broke the policy: 3 records past their deadline remain after the run. The other rules were kept."
        ),
    }
    assert 'class="verdict breach"' in html and '<tr class="bad">' in section(html, "real-runs")
    assert summary_text(tmp_path).startswith("BREACH: Rule C1 broke the policy")


@pytest.mark.parametrize(
    "report",
    [
        {
            "dag_id": "lethe_crm_retention",
            "run_id": "x",
            "as_of": "2026-11-26T00:00:00",
            "dry_run": False,
            "generated_at": "2026-11-26T02:00:00+00:00",
            "rules": [],
        },
        {"generated_at": "2026-11-26T02:00:00+00:00", "as_of": None, "dry_run": False, "runs": [], "rules": []},
    ],
)
def test_render_html_copes_with_older_and_empty_reports(report):
    html = render_html(report)
    assert 'id="verdict"' in html and "No rule has run yet" in html or "No run yet" in html


def test_a_latest_file_from_before_dry_runs_were_kept_apart_still_renders_them_apart():
    old = {
        "generated_at": "2026-11-26T02:00:00+00:00",
        "as_of": "2027-01-01T00:00:00",
        "dry_run": True,
        "demo_key": False,
        "runs": [
            {"dag_id": "lethe_crm_retention", "run_id": "real", "as_of": "2026-11-26T00:00:00", "dry_run": False},
            {"dag_id": "lethe_marketing_retention", "run_id": "dry", "as_of": "2027-01-01T00:00:00", "dry_run": True},
        ],
        "rules": [
            {**entry("C1"), "dag_id": "lethe_crm_retention", "dry_run": False},
            {**entry("N1", eligible=4), "dag_id": "lethe_marketing_retention", "dry_run": True},
        ],
    }
    html = render_html(old)
    real, dry = section(html, "real-runs"), section(html, "dry-runs")
    assert "C1" in real and "N1" not in real and 'class="dry-banner"' not in real
    assert "N1" in dry and 'class="dry-banner"' in dry
    assert verdict_line(html).startswith("Every rule was kept: nothing past its deadline remains.")


def test_names_from_the_systems_are_escaped(tmp_path):
    path, _ = write_run_report(
        dag_id="lethe_trials_retention",
        run={**run("t"), "rules": ["T1"]},
        results={"T1": result("T1", extra={"orphan_names": ["trial_<b>x</b>"]})},
        root=tmp_path,
    )
    html = (path.parent / "report.html").read_text()
    assert "<b>x</b>" not in html and "trial_&lt;b&gt;x&lt;/b&gt;" in html

"""Run reports against the audit trail, both ways.

Accepts the audit trail, the reports folder (``reports/<dag_id>/<run_id>/report.json``) and the
inventory. Finds, as plain sentences naming run, rule and counts:

- a report's rule whose counts differ from the rule's ``rule_summary`` entry, whose status or
  count remaining differs from its ``rule_outcome`` entry, or that has no such entry;
- a real run whose per-record entries (the kind's ``done_actions``) do not add up to the deleted
  and anonymised counts of its summary;
- a rule run in the trail that no report holds (runs of the ``lethe run`` command write no run
  report and are left out).

The trail is streamed; per-record entries are added up per run and rule (memory holds one total
per run and rule, not the entries).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterator

from lethe.audit import AuditTrail, audit_table
from lethe.config import Inventory
from lethe.evidence.history import RuleRun, Window, rule_runs
from lethe.sources import registry

COMPARED = ("eligible", "deleted", "anonymised", "exempt_hold", "exempt_restriction", "overdue_before", "quarantined")
CLI_DAG = "lethe_cli"  # `lethe run` writes no run report
EVERYTHING = Window(date(1970, 1, 1), date(9999, 12, 30))


@dataclass
class CrossCheck:
    reports: int = 0
    rule_runs: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reports": self.reports, "rule_runs": self.rule_runs, "findings": self.findings}


def run_reports(root: Path) -> Iterator[dict[str, Any]]:
    """Every run report under ``root`` (``latest`` and the consolidated reports are not runs)."""
    for path in sorted(root.glob("*/*/report.json")):
        if path.parent.parent.name == "latest":
            continue
        report = json.loads(path.read_text())
        report["_path"] = str(path.relative_to(root))
        yield report


def done_actions(inventory: Inventory) -> dict[str, tuple[str, ...]]:
    """Per rule, the audit actions that record one acted-on subject each."""
    found = {}
    for source in inventory.sources.values():
        for rule in source.rules:
            found[rule.rule] = registry.action_class(source.kind, rule.action).done_actions
    return found


def acted_on(trail: AuditTrail, inventory: Inventory) -> dict[tuple[str, str], int]:
    """Records acted on per (run, rule), added up from the per-record entries of real runs."""
    per_rule = done_actions(inventory)
    actions = sorted({a for names in per_rule.values() for a in names})
    totals: dict[tuple[str, str], int] = defaultdict(int)
    if not actions:
        return totals
    for row in trail.entries(audit_table.c.action.in_(actions), audit_table.c.dry_run.is_(False)):
        if row["action"] in per_rule.get(row["rule_id"], ()):
            totals[(row["run_id"], row["rule_id"])] += int(json.loads(row["details"]).get("rows", 1))
    return totals


def crosscheck(trail: AuditTrail, root: Path, inventory: Inventory) -> CrossCheck:
    found = CrossCheck()
    runs: dict[tuple[str, str], RuleRun] = {(r.run_id, r.rule_id): r for r in rule_runs(trail, EVERYTHING)}
    found.rule_runs = len(runs)
    reported: set[tuple[str, str]] = set()
    for report in run_reports(root):
        found.reports += 1
        for rule in report["rules"]:
            key = (report["run_id"], rule["rule"])
            reported.add(key)
            found.findings += _against_trail(report, rule, runs.get(key))
    acted = acted_on(trail, inventory)
    per_rule = done_actions(inventory)
    for (run_id, rule_id), run in runs.items():
        where = f"run {run_id} of {run.dag_id}, rule {rule_id}"
        if (run_id, rule_id) not in reported and run.dag_id != CLI_DAG:
            found.findings.append(
                f"{where}: in the audit trail (entries {run.first_seq}-{run.last_seq}) but in no run report"
            )
        if run.dry_run or run.summary is None or not per_rule.get(rule_id):
            continue
        summed = run.count("deleted") + run.count("anonymised")
        entries = acted.pop((run_id, rule_id), 0)
        if entries != summed:
            found.findings.append(
                f"{where}: its summary counts {summed} record(s) acted on, its per-record entries add up to {entries}"
            )
    for run_id, rule_id in sorted(key for key, n in acted.items() if n):
        found.findings.append(
            f"run {run_id}, rule {rule_id}: per-record entries ({acted[(run_id, rule_id)]}) with no rule summary"
        )
    return found


def _against_trail(report: dict[str, Any], rule: dict[str, Any], run: RuleRun | None) -> list[str]:
    where = f"{report['_path']}: rule {rule['rule']}"
    if run is None:
        return [f"{where}: no entry of this run in the audit trail"]
    problems = []
    if rule.get("status") != "failed" or run.summary is not None:
        if run.summary is None:
            problems.append(f"{where}: reported counts but the audit trail has no rule summary for the run")
        else:
            for name in COMPARED:
                reported, audited = int(rule.get(name) or 0), run.count(name)
                if reported != audited:
                    problems.append(f"{where}: {name} is {reported} in the report, {audited} in the audit trail")
    if run.outcome is None:
        problems.append(f"{where}: the audit trail has no outcome entry for the run")
    else:
        if (run.outcome.get("status") or "failed") != rule.get("status"):
            problems.append(
                f"{where}: status {rule.get('status')} in the report, {run.outcome.get('status')} in the audit trail"
            )
        if (run.outcome.get("remaining_after") or 0) != (rule.get("remaining_after") or 0):
            problems.append(
                f"{where}: {rule.get('remaining_after') or 0} remaining in the report, "
                f"{run.outcome.get('remaining_after') or 0} in the audit trail"
            )
    return problems

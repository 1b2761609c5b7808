"""How each run ended for each rule, in the audit trail: one ``rule_outcome`` entry per rule.

The rule's ``rule_summary`` entry (written with its changes) tells what it did; the outcome entry,
written when the run's report is written, adds what only the end of the run knows: the status
(``ok``, ``incomplete``, ``failed``), how many records past their deadline remain, the checks'
verdicts and, for a failed rule, why (a configuration error's message: names only, or the
exception's type). So the trail alone can rebuild a day's report, a failed rule included.

Accepts the run dict the DAGs resolve (``run_id``, ``as_of``, ``dry_run``, ``source``) and the
rule entries of a run report (:func:`lethe.report.rule_entry`).
"""

from __future__ import annotations

from typing import Any

from lethe.audit import AuditEntry, AuditTrail
from lethe.periods import to_utc_naive

OUTCOME = "rule_outcome"
SUMMARY = "rule_summary"
STOPPED = "validation_stopped"


def outcome_entry(*, dag_id: str, task_id: str, run: dict[str, Any], rule: dict[str, Any]) -> AuditEntry:
    """The outcome entry of one rule of a run (``record_count``: records remaining after it)."""
    remaining = rule.get("remaining_after")
    checks = rule.get("checks") or {}
    details = {
        "status": rule.get("status") or "failed",
        "remaining_after": remaining,
        "before": checks.get("before"),
        "after": checks.get("after"),
    }
    if rule.get("error"):
        details["error"] = str(rule["error"])[:500]
    return AuditEntry(
        run_id=run["run_id"],
        dag_id=dag_id,
        task_id=task_id,
        rule_id=rule["rule"],
        source=str(rule.get("source") or run.get("source") or ""),
        action=OUTCOME,
        subject_key="-",
        record_count=int(remaining or 0),
        as_of=to_utc_naive(run["as_of"]),
        dry_run=bool(run["dry_run"]),
        details=details,
    )


def record_outcomes(
    trail: AuditTrail, *, dag_id: str, task_id: str, run: dict[str, Any], rules: list[dict[str, Any]]
) -> int:
    """Chain one outcome entry per rule of a run, all in one transaction."""
    return trail.append([outcome_entry(dag_id=dag_id, task_id=task_id, run=run, rule=rule) for rule in rules])

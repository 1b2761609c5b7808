"""One rule's scan, enforce and summarise steps, as plain functions over a :class:`RunContext`.

The Airflow tasks call these; so do the tests, without a scheduler. They return dicts of counts
only (safe for XCom and logs: no personal data).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy.engine import URL, Engine

from lethe.audit import AuditTrail
from lethe.config import Inventory, Policy, load_inventory, load_policy
from lethe.db import connection_path, connection_url, make_engine
from lethe.sources.base import DEFAULT_BATCH_SIZE, RuleResult, RunContext, action_for

log = logging.getLogger("lethe")

AUDIT_CONN_ID = "lethe_audit"


@dataclass
class Engines:
    """Engines by connection id, created on first use from a resolver (Airflow's or the env)."""

    resolve: Callable[[str], URL] = connection_url
    _engines: dict[str, Engine] = field(default_factory=dict)

    def __call__(self, conn_id: str) -> Engine:
        if conn_id not in self._engines:
            self._engines[conn_id] = make_engine(self.resolve(conn_id))
        return self._engines[conn_id]

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


def batch_size_from_env() -> int:
    """``LETHE_BATCH_SIZE`` when set, else the default."""
    return int(os.environ.get("LETHE_BATCH_SIZE") or DEFAULT_BATCH_SIZE)


def make_context(
    *,
    run_id: str,
    dag_id: str,
    task_id: str,
    as_of: datetime,
    dry_run: bool,
    key: str,
    engines: Engines,
    policy: Policy | None = None,
    inventory: Inventory | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    folder_for: Callable[[str], str] = connection_path,
    create_audit: bool = True,
) -> RunContext:
    """The context of one task. ``create_audit``: create the audit tables if missing (a DAG's
    first task does it once per run; its later tasks pass False)."""
    policy = policy or load_policy()
    inventory = inventory or load_inventory(policy=policy)
    audit = AuditTrail(engines(AUDIT_CONN_ID), key)
    if create_audit:
        audit.create()
    return RunContext(
        run_id=run_id,
        dag_id=dag_id,
        task_id=task_id,
        as_of=as_of,
        dry_run=dry_run,
        policy=policy,
        inventory=inventory,
        audit=audit,
        key=key,
        engine_for=engines,
        batch_size=batch_size,
        url_for=engines.resolve,
        folder_for=folder_for,
    )


def check_rule(ctx: RunContext, rule_id: str) -> str:
    """The rule's live check (what its tasks run before any change); what it found, in a few words."""
    action = action_for(ctx, rule_id)
    action.check()
    return action.check_summary()


def scan_rule(ctx: RunContext, rule_id: str) -> dict[str, Any]:
    """Check the names against the live schema, then count; changes nothing."""
    action = action_for(ctx, rule_id)
    action.check()
    result = action.scan()
    rule = ctx.policy.rule(rule_id)
    log.info(
        "%s scan (as-of %s, %s %s, %s): eligible %d, exempt by legal hold %d, exempt by "
        "restriction %d, overdue before this run %d",
        rule_id,
        ctx.as_of.isoformat(),
        rule.period,
        "(configured default)" if rule.is_default else "(policy)",
        rule.policy_section,
        result.eligible,
        result.exempt_hold,
        result.exempt_restriction,
        result.overdue_before,
    )
    if result.overdue_before:
        log.warning(
            "%s: %d record(s) were already past their deadline before this run "
            "(a run was missed or failed): reported as overdue",
            rule_id,
            result.overdue_before,
        )
    return result.to_dict()


def _run_checks(suite) -> Any:
    """Run a suite with Great Expectations (imported here, in the task), then let its engine go."""
    from lethe.validation.gx import run_suite

    try:
        return run_suite(suite)
    finally:
        engine = getattr(suite.data, "engine", None)
        if engine is not None:
            engine.dispose()


def validate_rule(ctx: RunContext, rule_id: str) -> dict[str, Any]:
    """The checks before a rule acts; what they found, in counts and subject keys.

    Rows that fail a check are quarantined: the rule's enforcement leaves them alone and the
    report names them by reason and subject key. When more than the configured share of a table
    fails, or a check cannot run, :class:`QuarantineTooLarge` stops the rule before anything
    changes; its ``validation`` attribute carries what the checks found, for the report.
    """
    from lethe.errors import QuarantineTooLarge
    from lethe.validation import SqlData, judge

    action = action_for(ctx, rule_id)
    action.check()
    suite = action.before_suite()
    outcome = _run_checks(suite)
    tables = dict(suite.tables)
    if isinstance(suite.data, SqlData) and outcome.row_count is not None:
        tables.setdefault(suite.data.table, outcome.row_count)
    validated = {
        "suite": suite.name,
        "success": outcome.success,
        "checks": [check.to_dict() for check in outcome.checks],
        "tables": tables,
        "result": outcome.result,
    }
    try:
        reasons = judge(outcome, tables, ctx.policy.validation.max_quarantine_share, rule_id=rule_id)
    except QuarantineTooLarge as exc:
        validated.update(verdict="stopped", reasons=_reasons(outcome), samples={}, message=str(exc))
        ctx.audit.append([action.audit_entry("validation_stopped", "-", 0, _audited(validated))])
        log.error("%s checks before: STOPPED - %s", rule_id, exc)
        exc.validation = validated
        raise
    validated.update(
        verdict="quarantined" if reasons else "passed",
        reasons=reasons,
        samples=action.quarantine_samples(reasons),
    )
    # The verdict and quarantine counts reach the audit trail in the rule's summary entry.
    log.info(
        "%s checks before (%s, %d expectations): %s%s",
        rule_id,
        suite.name,
        len(outcome.checks),
        validated["verdict"],
        "".join(f", {n} {reason}" for reason, n in sorted(reasons.items())),
    )
    return validated


def _reasons(outcome) -> dict[str, int]:
    found: dict[str, int] = {}
    for check in outcome.checks:
        if check.reason and check.unexpected:
            found[check.reason] = found.get(check.reason, 0) + check.unexpected
    return found


def _audited(validated: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a check: the verdict and counts, not GX's whole result."""
    return {"suite": validated["suite"], "verdict": validated["verdict"], "quarantine": validated["reasons"]}


def check_after(ctx: RunContext, rule_id: str, enforced: dict[str, Any] | None = None) -> dict[str, Any]:
    """The check after a rule: no record eligible at the as-of remains (exempt and quarantined
    records apart). Returns the verdict, the count remaining and GX's result.

    ``enforced``: the rule's enforcement result; the records it decided were waiting for another
    rule still count as waiting (that rule may have closed them since, in another task)."""
    action = action_for(ctx, rule_id)
    action.keep_waiting((enforced or {}).get("waited") or [])
    suite = action.after_suite()
    outcome = _run_checks(suite)
    remaining = sum(check.unexpected or 0 for check in outcome.checks)
    verdict = "passed" if outcome.success else "failed"
    log.info("%s check after (%s): %s, %d eligible record(s) remain", rule_id, suite.name, verdict, remaining)
    return {
        "suite": suite.name,
        "success": outcome.success,
        "verdict": verdict,
        "remaining": remaining,
        "checks": [check.to_dict() for check in outcome.checks],
        "result": outcome.result,
    }


def work_items(ctx: RunContext, rule_id: str) -> list[dict[str, Any]]:
    """The items a mapped rule acts on (empty for unmapped rules)."""
    action = action_for(ctx, rule_id)
    return action.work_items() if action.mapped else []


def enforce_item(ctx: RunContext, rule_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """One item of a mapped rule (one trial database, one log file)."""
    action = action_for(ctx, rule_id)
    action.check()
    return action.enforce_item(item)


def combine_items(
    ctx: RunContext, rule_id: str, scanned: dict[str, Any], item_results: list[dict[str, Any]]
) -> dict[str, Any]:
    action = action_for(ctx, rule_id)
    result = action.combine(RuleResult.from_dict(scanned), [r for r in item_results if r])
    return result.to_dict()


def enforce_rule(
    ctx: RunContext, rule_id: str, scanned: dict[str, Any] | None = None, *, checked: bool = False
) -> dict[str, Any]:
    """Act on every eligible record. ``scanned``: the scan's counts (not counted again);
    ``checked``: the names were checked by this process already (the scan did)."""
    action = action_for(ctx, rule_id)
    if not checked:
        action.check()
    result = action.enforce(RuleResult.from_dict(scanned) if scanned else None)
    log.info(
        "%s %s: %d deleted, %d anonymised in %d batch(es)%s%s",
        rule_id,
        "dry run" if ctx.dry_run else "enforced",
        result.deleted,
        result.anonymised,
        result.batches,
        "".join(f", {n} related {t} row(s)" for t, n in sorted(result.related.items())),
        " - nothing was changed" if ctx.dry_run else "",
    )
    return result.to_dict()


def with_validation(result: dict[str, Any], validated: dict[str, Any] | None) -> dict[str, Any]:
    """The rule's result with what the checks before it found (quarantine counts, verdict)."""
    if validated:
        result = {**result, "quarantine": validated.get("reasons") or {}, "before": validated.get("verdict")}
    return result


def summarise_rule(
    ctx: RunContext, rule_id: str, enforced: dict[str, Any], checked: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Count what is still eligible after enforcement: must be zero unless this was a dry run.

    ``checked``: the check after the rule (:func:`check_after`), whose count is taken as the
    count remaining; without it the action counts.
    """
    action = action_for(ctx, rule_id)
    result = RuleResult.from_dict(enforced)
    result.remaining_after = checked["remaining"] if checked else action.verify()
    if checked:
        result.after = checked["verdict"]
    if result.remaining_after and not ctx.dry_run:
        result.status = "incomplete"
        log.error("%s: %d eligible record(s) remain after enforcement", rule_id, result.remaining_after)
    log.info(
        "%s summary: eligible %d, deleted %d, anonymised %d, exempt (hold %d, restriction %d), "
        "quarantined %d, overdue before %d, remaining after %d",
        rule_id,
        result.eligible,
        result.deleted,
        result.anonymised,
        result.exempt_hold,
        result.exempt_restriction,
        result.quarantined,
        result.overdue_before,
        result.remaining_after,
    )
    return result.to_dict()


def run_rule(ctx: RunContext, rule_id: str) -> dict[str, Any]:
    """scan, check, enforce, summarise and check again in one call, as the DAG does (tests and
    the CLI). The result carries both checks' verdicts; a policy still broken after a real run
    shows as ``status: incomplete`` (the DAG's summarise task fails on it)."""
    scanned = scan_rule(ctx, rule_id)  # checks the names once; the steps below reuse the check
    validated = validate_rule(ctx, rule_id)
    scanned = with_validation(scanned, validated)
    action = action_for(ctx, rule_id)
    if action.mapped:
        items = [action.enforce_item(item) for item in action.work_items()]
        enforced = combine_items(ctx, rule_id, scanned, items)
    else:
        enforced = enforce_rule(ctx, rule_id, scanned, checked=True)
    return summarise_rule(ctx, rule_id, with_validation(enforced, validated), check_after(ctx, rule_id, enforced))

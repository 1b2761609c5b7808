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


def summarise_rule(ctx: RunContext, rule_id: str, enforced: dict[str, Any]) -> dict[str, Any]:
    """Count what is still eligible after enforcement: must be zero unless this was a dry run."""
    action = action_for(ctx, rule_id)
    result = RuleResult.from_dict(enforced)
    result.remaining_after = action.verify()
    if result.remaining_after and not ctx.dry_run:
        result.status = "incomplete"
        log.error("%s: %d eligible record(s) remain after enforcement", rule_id, result.remaining_after)
    log.info(
        "%s summary: eligible %d, deleted %d, anonymised %d, exempt (hold %d, restriction %d), "
        "overdue before %d, remaining after %d",
        rule_id,
        result.eligible,
        result.deleted,
        result.anonymised,
        result.exempt_hold,
        result.exempt_restriction,
        result.overdue_before,
        result.remaining_after,
    )
    return result.to_dict()


def run_rule(ctx: RunContext, rule_id: str) -> dict[str, Any]:
    """scan, enforce, summarise in one call, as the DAG does (tests and the CLI)."""
    scanned = scan_rule(ctx, rule_id)  # checks the names once; the steps below reuse the check
    action = action_for(ctx, rule_id)
    if action.mapped:
        items = [action.enforce_item(item) for item in action.work_items()]
        enforced = combine_items(ctx, rule_id, scanned, items)
    else:
        enforced = enforce_rule(ctx, rule_id, scanned, checked=True)
    return summarise_rule(ctx, rule_id, enforced)

"""The consolidated report of one day (the schema is in :mod:`lethe.evidence`).

Accepts the audit trail, the policy and inventory, the UTC day, and optionally the chain's state
(:func:`chain_state`) and a forecast (:mod:`lethe.evidence.forecast`). Everything else comes from
the trail: per rule, the day's last real run (counts from its ``rule_summary``, status and what
remained from its ``rule_outcome``), whether it was kept and since when, and 90 days of trend.

A rule's day is one of: ``kept`` (a real run ended ok and nothing past its deadline remained),
``breach`` (something past its deadline remained), ``failed`` (the rule failed, was stopped by
its checks, or its run never recorded how it ended), ``dry_run_only`` (only dry runs: the source
is not armed) and ``did_not_run`` (nothing at all: a missed night). Every day but ``kept`` is a
breach of the promise and is listed at the top of the report in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from lethe.audit import GENESIS, AuditTrail, head_table
from lethe.config import Inventory, Policy
from lethe.evidence.history import Day, RuleRun, Window, by_rule_and_day, first_runs, rule_runs
from lethe.report import counted, unit_for

TREND_DAYS = 90
STATUS_WORDS = {
    "kept": "kept: it ran and nothing past its deadline remains",
    "breach": "breach: records past their deadline remain after its run",
    "failed": "failed: the rule did not complete",
    "dry_run_only": "not enforced: only dry runs (the source is not armed)",
    "did_not_run": "did not run",
}


@dataclass
class ChainState:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def chain_state(trail: AuditTrail) -> ChainState:
    """Recompute the whole chain and read its head (sequence and hash)."""
    result = trail.verify()
    with trail.engine.connect() as conn:
        head = conn.execute(head_table.select().where(head_table.c.id == 1)).first()
    seq, digest = (head.seq, head.entry_hash) if head else (0, GENESIS)
    return ChainState(result.ok, result.entries, seq, digest, result.first_bad_seq, result.problem)


def enforced_rules(policy: Policy, inventory: Inventory) -> list[str]:
    """The policy's rules the inventory enforces, in the policy's order."""
    enforced = {rule_id for source in inventory.sources for rule_id in inventory.rules_of(source)}
    return [rule_id for rule_id in policy.rule_ids if rule_id in enforced]


def build_daily(
    trail: AuditTrail,
    policy: Policy,
    inventory: Inventory,
    day: date,
    *,
    chain: ChainState | None = None,
    forecast: dict[str, dict[str, int]] | None = None,
    forecast_as_of: datetime | None = None,
    trend_days: int = TREND_DAYS,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The consolidated report of ``day`` (UTC): runs whose as-of falls on that day."""
    window = Window.ending(day, trend_days)
    days = by_rule_and_day(list(rule_runs(trail, window)))
    started = first_runs(trail)
    chain = chain or chain_state(trail)
    rules = [
        _rule(policy, inventory, rule_id, day, window, days, forecast, started.get(rule_id))
        for rule_id in enforced_rules(policy, inventory)
    ]
    breaches = [b for rule in rules for b in _breaches(rule, day)]
    if not chain.ok:
        breaches.append(
            {
                "rule": None,
                "kind": "chain_broken",
                "text": f"The audit trail does not verify: {chain.problem} (first bad entry: {chain.first_bad_seq}). "
                "Its entries cannot be relied on as evidence until this is explained.",
            }
        )
    decisions = [
        {
            "rule": rule["rule"],
            "period": rule["period"],
            "text": f"{rule['rule']} ({rule['data_category']}): the period {rule['period']} is a configured "
            f"default; the policy ({rule['policy_section']}) states none. The data protection officer "
            "confirms it or sets another.",
        }
        for rule in rules
        if rule["period_source"] == "default"
    ]
    generated = (generated_at or datetime.now(timezone.utc)).replace(microsecond=0)
    return {
        "kind": "lethe_consolidated_report",
        "version": 1,
        "date": day.isoformat(),
        "generated_at": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "built_from": "audit trail and sources" if forecast is not None else "audit trail",
        "policy": {"name": policy.policy.name, "document": policy.policy.document},
        "verdict": _verdict(day, rules, breaches),
        "breaches": breaches,
        "decisions": decisions,
        "chain": chain.to_dict(),
        "trend_window": {"from": window.first.isoformat(), "to": window.last.isoformat(), "days": trend_days},
        "forecast": {
            "computed": forecast is not None,
            "as_of": forecast_as_of.isoformat() if forecast is not None and forecast_as_of else None,
            "note": (
                "What each rule would act on by 7 and 30 days after the day's last run, counted by the "
                "rules' own scans at those as-ofs, read-only (holds and restrictions as recorded now)."
                if forecast is not None
                else "Not computed: this report was rebuilt from the audit trail alone."
            ),
        },
        "rules": rules,
    }


def _rule(
    policy: Policy,
    inventory: Inventory,
    rule_id: str,
    day: date,
    window: Window,
    days: dict,
    forecast: dict[str, dict[str, int]] | None,
    started: date | None,
) -> dict[str, Any]:
    rule = policy.rule(rule_id)
    source, _ = inventory.rule(rule_id)
    unit = unit_for(rule.action)
    today = days.get((rule_id, day)) or Day(rule_id, day)
    last = today.last
    status = today.status
    trend = [_trend_point(days.get((rule_id, d)) or Day(rule_id, d), started) for d in window.days()]
    since = _kept_since(trend)
    return {
        "rule": rule_id,
        "description": rule.description,
        "policy_section": rule.policy_section,
        "legal_basis": rule.legal_basis,
        "data_category": rule.data_category,
        "source": source.source,
        "action": rule.action,
        "unit": unit,
        "period": str(rule.period),
        "period_source": rule.period_source,
        "trigger": rule.trigger,
        "status": status,
        "status_text": _status_text(status, last, unit),
        "kept_since": since,
        "kept_since_text": _kept_since_text(since, trend, window),
        "counts": _counts(last, rule.action),
        "checks": {
            "before": (last.outcome or {}).get("before") if last else None,
            "after": (last.outcome or {}).get("after") if last else None,
        }
        if last is None or last.stopped is None
        else {"before": "stopped", "after": None},
        "runs": len(today.real),
        "run": _run(last),
        "forecast": (forecast or {}).get(rule_id) if forecast is not None else None,
        "trend": trend,
    }


def _counts(run: RuleRun | None, action: str) -> dict[str, Any]:
    names = ("eligible", "deleted", "anonymised", "exempt_hold", "exempt_restriction", "quarantined", "overdue_before")
    counts: dict[str, Any] = {name: (run.count(name) if run and run.summary else 0) for name in names}
    # A dropped database is counted apart: "deleted" stays rows and files.
    counts["dropped"] = counts["deleted"] if action == "drop_database" else 0
    if action == "drop_database":
        counts["deleted"] = 0
    counts["overdue_after"] = run.remaining_after if run else None
    return counts


def _run(run: RuleRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "as_of": run.as_of.isoformat(),
        "dry_run": run.dry_run,
        "first_seq": run.first_seq,
        "last_seq": run.last_seq,
    }


def _trend_point(day: Day, started: date | None) -> dict[str, Any]:
    """One day of a rule's trend; a day before the rule's first run ever is ``not_started`` (no
    breach: Lethe did not enforce it yet), not a missed night."""
    real = day.real
    before_first = started is None or day.day < started
    return {
        "date": day.day.isoformat(),
        "ran": bool(real),
        "status": "not_started" if before_first and not day.runs else day.status,
        "removed": day.removed,
        "overdue_before": real[0].count("overdue_before") if real else 0,
        "overdue_after": real[-1].remaining_after if real else None,
    }


def _kept_since(trend: list[dict[str, Any]]) -> str | None:
    """The first day of the unbroken run of kept days that ends on the report's day."""
    since = None
    for point in reversed(trend):
        if point["status"] != "kept":
            break
        since = point["date"]
    return since


def _kept_since_text(since: str | None, trend: list[dict[str, Any]], window: Window) -> str:
    if since is None:
        return "not kept on this day"
    nights = sum(1 for point in trend if point["date"] >= since)
    if since == window.first.isoformat():
        return f"{since} or earlier (every night of the {len(trend)}-day window)"
    return f"{since} ({nights} night{'s' if nights != 1 else ''} in a row)"


def _status_text(status: str, run: RuleRun | None, unit: str) -> str:
    text = STATUS_WORDS[status]
    if status == "breach" and run is not None:
        text = f"breach: {counted(run.remaining_after or 0, unit)} past the deadline remain after its run"
    if status == "failed" and run is not None:
        error = (run.outcome or {}).get("error")
        text = {
            "stopped": "failed: its checks before found too much bad data and stopped it; nothing changed",
            "no_outcome": "failed: it started but its run never recorded how it ended",
        }.get(run.status, f"failed: {error}" if error else STATUS_WORDS["failed"])
    return text


def _breaches(rule: dict[str, Any], day: date) -> list[dict[str, Any]]:
    status, rid = rule["status"], rule["rule"]
    what = f"Rule {rid} ({rule['policy_section']}, {rule['data_category']})"
    if status == "kept":
        return []
    if status == "did_not_run":
        text = f"{what} did not run on {day.isoformat()}: no run recorded anything for it in the audit trail."
    elif status == "dry_run_only":
        text = f"{what} ran only as a dry run on {day.isoformat()}: its source is not armed, nothing was enforced."
    elif status == "failed":
        text = f"{what} failed on {day.isoformat()} ({rule['status_text']})."
    else:
        remaining = rule["counts"]["overdue_after"] or 0
        text = (
            f"{what} left {counted(remaining, rule['unit'])} past {'its' if remaining == 1 else 'their'} deadline "
            f"after its run {rule['run']['run_id']}."
        )
    kind = {"breach": "overdue_after"}.get(status, status)
    return [{"rule": rid, "kind": kind, "text": text}]


def _verdict(day: date, rules: list[dict[str, Any]], breaches: list[dict[str, Any]]) -> dict[str, Any]:
    if not breaches:
        sinces = [rule["kept_since"] for rule in rules if rule["kept_since"]]
        since = max(sinces) if sinces else day.isoformat()
        return {
            "ok": True,
            "headline": f"Every rule was kept on {day.isoformat()}: each ran and nothing past its deadline "
            f"remains. Every rule has been kept every night since {since}.",
        }
    n = len(breaches)
    return {
        "ok": False,
        "headline": f"{n} breach{'es' if n != 1 else ''} on {day.isoformat()}: "
        + " ".join(breach["text"] for breach in breaches),
    }

"""The Airflow side of the compliance evidence: the tasks of ``lethe_report`` and
``lethe_audit_verify``, the Assets the nightly DAGs update, and the report's schedule.

Like :mod:`lethe.airflow_adapter` (whose connections, audit key and notifier these tasks use), it
imports the engine only inside the tasks, so the DAG files parse fast.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow.sdk import Asset, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from lethe.airflow_adapter import audit_key, connection_path, connection_url, policy_and_inventory, send_alert

log = logging.getLogger("lethe")

REPORT_FALLBACK = "0 7 * * *"  # 07:00 UTC: a night that never finished still gets its report
VERIFY_SCHEDULE = "0 5 * * 0"  # Sundays 05:00 UTC, after the night's runs and before the report


def retention_asset(source_id: str) -> Asset:
    """The Asset a source's nightly DAG updates when its run succeeded (its report task)."""
    return Asset(f"lethe_retention_{source_id}", group="lethe")


def report_schedule():
    """When all the nightly DAGs have succeeded, and every day at 07:00 UTC whatever happened."""
    from airflow.sdk import AssetAll, AssetOrTimeSchedule, CronTriggerTimetable

    _, inventory = policy_and_inventory()
    assets = [retention_asset(source_id) for source_id in sorted(inventory.sources)]
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(REPORT_FALLBACK, timezone="UTC"), assets=AssetAll(*assets)
    )


def report_params() -> dict[str, Param]:
    return {
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day",
            description="The UTC day to report (its runs are those whose as-of falls on it). Empty: "
            "the day of this run.",
            section="Report",
        ),
        "forecast": Param(
            True,
            type="boolean",
            title="Forecast",
            description="Count what each rule will act on in the next 7 and 30 days, from the "
            "sources (read-only). Off: the report is built from the audit trail alone.",
            section="Report",
        ),
    }


def _trail():
    from lethe.audit import AuditTrail
    from lethe.db import make_engine
    from lethe.runner import AUDIT_CONN_ID

    return AuditTrail(make_engine(connection_url(AUDIT_CONN_ID)), audit_key())


def _reports_root():
    from lethe.report import reports_dir

    return reports_dir()


@task
def report_day() -> str:
    """The day to report: the ``date`` param, else the UTC day of the run (logical date or, for
    an Asset-triggered run, when it was triggered)."""
    from lethe.periods import to_utc_naive

    context = get_current_context()
    chosen = context["params"].get("date")
    if chosen:
        return to_utc_naive(chosen).date().isoformat()
    moment = context.get("logical_date") or getattr(context["dag_run"], "run_after", None)
    return to_utc_naive(moment).date().isoformat()


@task
def chain_head() -> dict[str, Any]:
    """Recompute the audit chain and read its head (a broken chain is a breach, not a task failure:
    the report must still be written to say so)."""
    from lethe.evidence.daily import chain_state

    trail = _trail()
    try:
        state = chain_state(trail)
    finally:
        trail.engine.dispose()
    log.info(
        "audit chain: %s, %d entries, head entry %d %s",
        "verified" if state.ok else f"BROKEN at entry {state.first_bad_seq} ({state.problem})",
        state.entries,
        state.head_seq,
        state.head_hash,
    )
    return state.to_dict()


@task
def forecast_rules(day: str) -> dict[str, Any] | None:
    """Each rule's scan at the day + 7 and + 30 days, dry and read-only (None when turned off)."""
    from datetime import date, datetime, time

    from lethe.evidence.daily import enforced_rules
    from lethe.evidence.forecast import forecast
    from lethe.runner import Engines

    if not get_current_context()["params"].get("forecast", True):
        return None
    policy, inventory = policy_and_inventory()
    since = datetime.combine(date.fromisoformat(day), time())
    engines = Engines(resolve=connection_url)
    try:
        found = forecast(
            policy=policy,
            inventory=inventory,
            rule_ids=enforced_rules(policy, inventory),
            engines=engines,
            key=audit_key(),
            since=since,
            folder_for=connection_path,
        )
    finally:
        engines.dispose()
    for rule_id, counts in found.items():
        log.info("%s forecast: %s in 7 days, %s in 30 days", rule_id, counts.get("7"), counts.get("30"))
    return {"since": since.isoformat(), "rules": found}


@task
def write_report(day: str, chain: dict[str, Any], predicted: dict[str, Any] | None) -> dict[str, Any]:
    """Build the consolidated report from the audit trail, write it with the register and the
    chain head to reports/daily/<day>/ (and reports/latest/); returns its verdict and breaches."""
    from datetime import date, datetime

    from lethe.evidence.daily import ChainState
    from lethe.evidence.publish import publish_daily

    policy, inventory = policy_and_inventory()
    trail = _trail()
    try:
        report, folder = publish_daily(
            trail,
            policy,
            inventory,
            date.fromisoformat(day),
            _reports_root(),
            chain=ChainState(**chain),
            forecast=predicted["rules"] if predicted else None,
            forecast_as_of=datetime.fromisoformat(predicted["since"]) if predicted else None,
        )
    finally:
        trail.engine.dispose()
    log.info("consolidated report of %s: %s (%s)", day, report["verdict"]["headline"], folder)
    return {
        "date": day,
        "ok": report["verdict"]["ok"],
        "headline": report["verdict"]["headline"],
        "breaches": [b["text"] for b in report["breaches"]],
        "folder": str(folder),
    }


@task
def alert_on_breaches(summary: dict[str, Any]) -> int:
    """Tell the notifier about every breach of the day; the count told."""
    from lethe.alerts import Alert

    if not summary["breaches"]:
        log.info("no breach on %s", summary["date"])
        return 0
    context = get_current_context()
    send_alert(
        Alert(
            "breach",
            f"{len(summary['breaches'])} breach(es) of the retention policy on {summary['date']}",
            [*summary["breaches"], f"Report: {summary['folder']}/consolidated.html"],
            dag_id=context["ti"].dag_id,
            run_id=context["dag_run"].run_id,
        )
    )
    return len(summary["breaches"])


@task
def verify_chain() -> dict[str, Any]:
    """Recompute the whole chain; fail naming the first bad entry."""
    from lethe.evidence.daily import chain_state

    trail = _trail()
    try:
        state = chain_state(trail)
    finally:
        trail.engine.dispose()
    if not state.ok:
        message = f"audit trail broken at entry {state.first_bad_seq}: {state.problem}"
        _verification_failed(message, [message])
        raise AirflowFailException(message)
    log.info("audit trail intact: %d entries, head entry %d %s", state.entries, state.head_seq, state.head_hash)
    return state.to_dict()


@task
def crosscheck_reports() -> dict[str, Any]:
    """Every count of every run report against its audit entries, and the other way round."""
    from lethe.evidence.crosscheck import crosscheck

    _, inventory = policy_and_inventory()
    trail = _trail()
    try:
        found = crosscheck(trail, _reports_root(), inventory)
    finally:
        trail.engine.dispose()
    for finding in found.findings:
        log.error("cross-check: %s", finding)
    if not found.ok:
        message = f"{len(found.findings)} run report count(s) do not match the audit trail"
        _verification_failed(message, found.findings[:20])
        raise AirflowFailException(f"{message}: {found.findings[0]}")
    log.info("cross-check: %d run report(s) and %d rule run(s) agree", found.reports, found.rule_runs)
    return found.to_dict()


def _verification_failed(summary: str, lines: list[str]) -> None:
    from lethe.alerts import Alert

    context = get_current_context()
    send_alert(
        Alert("verification_failed", summary, lines, dag_id=context["ti"].dag_id, run_id=context["dag_run"].run_id)
    )


def evidence_dag_settings(doc: str, *, retries: int = 1) -> dict[str, Any]:
    from datetime import timedelta

    import pendulum

    return {
        "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {
            "owner": "lethe",
            "retries": retries,
            "retry_delay": timedelta(seconds=int(os.environ.get("LETHE_RETRY_DELAY_SECONDS", "300"))),
        },
        "doc_md": doc,
    }

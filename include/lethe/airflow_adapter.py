"""The Airflow adapter: connections, variables, context, the nightly tasks, deadline alerts and
the notifier's Airflow side (with :mod:`lethe.airflow_evidence`, the only modules importing Airflow).

DAG files stay thin: ``@dag(schedule=SCHEDULE, **nightly_dag_settings(SOURCE, __doc__))`` around
``retention_tasks(SOURCE)``. The tasks are module-level ``@task`` functions, composed per rule
with ``.override(...)`` and, for kinds whose work list is data, ``.partial(...).expand(...)``.
Heavy imports (SQLAlchemy, the engine) happen inside the tasks, so DAG files parse fast. Reading
the policy and inventory at parse time is deliberate (once per parse): a broken file shows as an
import error in the UI instead of a run on a half-read policy, and each DAG's docs list its rules,
periods and policy sections from the policy file itself.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from airflow.sdk import Connection, Param, Variable, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from lethe.arming import ARMED_VARIABLE
from lethe.config import DEFAULT_INVENTORY, DEFAULT_POLICY, Inventory, Policy, load_inventory, load_policy
from lethe.errors import ConfigurationError
from lethe.sources import registry

log = logging.getLogger("lethe")

DEFAULT_ARGS = {
    "owner": "lethe",
    "retries": 2,
    # A database that was briefly away gets five minutes; tests shorten it.
    "retry_delay": timedelta(seconds=int(os.environ.get("LETHE_RETRY_DELAY_SECONDS", "300"))),
}
SCHEDULE = "0 2 * * *"  # nightly, 02:00 UTC
# Every nightly run must have finished by 06:00 UTC: four hours after its logical date (02:00).
DEADLINE = timedelta(hours=4)
# The Airflow SMTP connection alerts are e-mailed through; its extra "to" lists the recipients.
ALERT_CONN_ID = os.environ.get("LETHE_ALERT_CONN_ID") or "smtp_default"


def mapped_kinds() -> dict[str, str | None]:
    """Kinds whose work list is data: one mapped enforce task per item, in this pool (or none)."""
    return registry.mapped_kinds()


@lru_cache(maxsize=4)
def _read(policy_file: str, inventory_dir: str, _versions: tuple) -> tuple[Policy, Inventory]:
    policy = load_policy(policy_file)
    return policy, load_inventory(inventory_dir, policy=policy)


def _version(path: Path) -> tuple[str, int]:
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:
        return str(path), -1  # missing: the loader says so


def policy_and_inventory() -> tuple[Policy, Inventory]:
    """The policy and inventory, read and validated once per parse: read again when a file changes."""
    policy_file = Path(os.environ.get("LETHE_POLICY_FILE") or DEFAULT_POLICY)
    inventory_dir = Path(os.environ.get("LETHE_INVENTORY_DIR") or DEFAULT_INVENTORY)
    versions = (_version(policy_file), *map(_version, sorted(inventory_dir.glob("*.yaml"))))
    return _read(str(policy_file), str(inventory_dir), versions)


def nightly_dag_settings(source_id: str, doc: str = "") -> dict[str, Any]:
    """What every nightly retention DAG shares; the DAG file adds its schedule."""
    import pendulum

    _, inventory = policy_and_inventory()
    source = inventory.sources[source_id]
    rule_ids = inventory.rules_of(source_id)
    return {
        "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
        "catchup": False,  # a missed night is caught up by the next run: rules act on all that is due
        "max_active_runs": 1,
        "default_args": DEFAULT_ARGS,
        "params": retention_params(rule_ids),
        "description": f"Retention rules {', '.join(rule_ids)}: {source.description} "
        f"(dry run until armed: lethe arm {source_id})",
        "doc_md": dag_doc(source_id, doc),
        "tags": ["lethe", "retention", source_id],
        "deadline": nightly_deadline() if deadline_alerts_on() else None,
    }


def deadline_alerts_on() -> bool:
    """Whether the nightly DAGs carry their deadline alert (``LETHE_DEADLINE_ALERTS``, default on).

    ``airflow dags test`` / ``dag.test()`` of Airflow 3.3.2 cannot end a successful run of a DAG
    that has a deadline alert: it looks the alert up by an id only the scheduler's serialization
    assigns. It evaluates no deadline either, so ``make run`` and the ``dag.test()`` tests turn
    the alert off; the scheduler (``make airflow``, ``make cluster``, a deployment) keeps it.
    """
    return os.environ.get("LETHE_DEADLINE_ALERTS", "on").strip().lower() not in ("off", "0", "false", "no")


def nightly_deadline():
    """The deadline alert of a nightly DAG: finished by 06:00 UTC, else :func:`deadline_missed`.

    Counted from the run's logical date (02:00 for the nightly schedule); a manual run without a
    logical date has no deadline.
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=DEADLINE,
        callback=AsyncCallback(f"{__name__}.deadline_missed"),
        name="lethe_nightly_0600_utc",
    )


async def deadline_missed(context: dict | None = None, **_: Any) -> str:
    """The deadline callback (run by the triggerer): the run had not finished in time."""
    from lethe.alerts import Alert, anotify

    dag_run = (context or {}).get("dag_run") or {}
    deadline = _utc_minute(((context or {}).get("deadline") or {}).get("deadline_time"))
    alert = Alert(
        "deadline_missed",
        f"{dag_run.get('dag_id', 'a nightly DAG')} had not finished by {deadline} UTC",
        [
            f"logical date {dag_run.get('logical_date')}, state {dag_run.get('state')}",
            "The night's retention rules may not have run: check the run in Airflow and the "
            "consolidated report (reports/latest/consolidated.html).",
        ],
        dag_id=str(dag_run.get("dag_id") or ""),
        # The scheduler hands the run over as the REST API shows it: its id is "dag_run_id".
        run_id=str(dag_run.get("dag_run_id") or ""),
    )
    await anotify(alert, await _async_mailer())
    return alert.log_line()


def _utc_minute(value: Any) -> str:
    """A deadline (datetime or ISO text, as the scheduler hands it over) as ``YYYY-MM-DD HH:MM``."""
    from lethe.periods import to_utc_naive

    try:
        return f"{to_utc_naive(value):%Y-%m-%d %H:%M}"
    except (TypeError, ValueError):
        return str(value)


def send_alert(alert: Any) -> bool:
    """Tell the one notifier (a task's side): a log line, and an e-mail when SMTP is configured."""
    from lethe.alerts import notify

    return notify(alert, _mailer())


def _alert_settings(conn) -> tuple[list[str], str | None] | None:
    """Recipients and sender from the SMTP connection's extra; None (log only) without recipients."""
    from lethe.alerts import recipients

    extra = conn.extra_dejson or {}
    to = recipients(extra.get("to") or os.environ.get("LETHE_ALERT_TO"))
    if not to:
        log.warning('SMTP connection %s names no recipient (extra "to"): alerts are logged only', ALERT_CONN_ID)
        return None
    return to, extra.get("from_email")


def _mailer():
    """A sender through Airflow's SMTP connection, or None (log only) when none is configured."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(ALERT_CONN_ID)
    except AirflowNotFoundException:
        log.info("no SMTP connection %s: alerts are logged only", ALERT_CONN_ID)
        return None
    settings = _alert_settings(conn)
    if settings is None:
        return None
    to, sender = settings

    def send(subject: str, body: str) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=ALERT_CONN_ID) as hook:
            hook.send_email_smtp(to=to, subject=subject, html_content=_mail_html(body), from_email=sender)

    return send


async def _async_mailer():
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = await Connection.async_get(ALERT_CONN_ID)
    except AirflowNotFoundException:
        log.info("no SMTP connection %s: alerts are logged only", ALERT_CONN_ID)
        return None
    settings = _alert_settings(conn)
    if settings is None:
        return None
    to, sender = settings

    async def send(subject: str, body: str) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        async with SmtpHook(smtp_conn_id=ALERT_CONN_ID) as hook:
            await hook.asend_email_smtp(to=to, subject=subject, html_content=_mail_html(body), from_email=sender)

    return send


def _mail_html(body: str) -> str:
    from html import escape

    return f"<pre>{escape(body)}</pre>"


def dag_doc(source_id: str, doc: str) -> str:
    """The DAG file's docs with, after its heading, its rules as the policy file states them."""
    policy, inventory = policy_and_inventory()
    lines = ["| rule | what | period (from) | action | policy |", "|---|---|---|---|---|"]
    for rule_id in inventory.rules_of(source_id):
        rule = policy.rule(rule_id)
        default = ", **configured default** (the policy states no period)" if rule.is_default else ""
        lines.append(
            f"| **{rule.id}** | {rule.description} | {rule.period} ({rule.trigger}){default} | "
            f"{rule.action} | {rule.policy_section} |"
        )
    table = "\n".join(lines)
    heading, _, rest = doc.strip().partition("\n")
    return (
        f"{heading}\n\nRules of the policy *{policy.policy.name}*, read from the policy file when this "
        f"DAG was parsed:\n\n"
        f"{table}\n\n{rest.strip()}\n"
    )


def retention_params(rule_ids: list[str]) -> dict[str, Param]:
    return {
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Report what would change; change nothing. Every run of a source "
            "that is not armed is a dry run anyway.",
            section="Run",
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="As of",
            description="Decide as of this instant (a date means 00:00 UTC). Empty: the run's data interval end.",
            section="Run",
        ),
        "rules": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "enum": rule_ids},
            examples=rule_ids,
            title="Rules",
            description=f"Only these rules (empty: every rule of this DAG: {', '.join(rule_ids)}).",
            section="Run",
        ),
    }


def rules_for(source_id: str) -> list[str]:
    """The rule ids the inventory enforces on a source (read at parse time, validated)."""
    return policy_and_inventory()[1].rules_of(source_id)


def retention_tasks(source_id: str) -> None:
    """Wire a source's DAG: resolve the run, one task group per rule, then the report."""
    kind = policy_and_inventory()[1].sources[source_id].kind
    mapped = mapped_kinds()
    rule_ids = rules_for(source_id)
    run = resolve_run(source_id)
    summaries = [rule_tasks(rule_id, mapped=kind in mapped, pool=mapped.get(kind))(run) for rule_id in rule_ids]
    from lethe.airflow_evidence import retention_asset

    # The Asset tells lethe_report this source's night succeeded (a failed rule fails the report task).
    summaries >> report.override(outlets=[retention_asset(source_id)])(run, rule_ids)


def connection_url(conn_id: str):
    """A SQLAlchemy URL from an Airflow connection (env, secrets backend or metadata DB)."""
    from lethe.db import url_from_fields

    conn = Connection.get(conn_id)
    return url_from_fields(conn.conn_type, conn.host, conn.login, conn.password, conn.port, conn.schema)


def connection_path(conn_id: str) -> str:
    """The folder of a file-system (``fs``) connection."""
    conn = Connection.get(conn_id)
    return conn.extra_dejson.get("path") or conn.host or ""


def audit_key() -> str:
    from lethe.subjects import MissingAuditKey
    from lethe.subjects import audit_key as check

    try:
        return check(os.environ.get("LETHE_AUDIT_KEY") or Variable.get("lethe_audit_key", default=None))
    except MissingAuditKey as exc:
        raise AirflowFailException(str(exc)) from None


FAILURE_KEY = "lethe_failure"  # XCom key: why a rule's task failed, for the report
# XCom keys of what a failing task still has to tell the report: the checks before a rule that
# stopped it, the check after it, and the summary of a rule whose check after failed.
CHECKS_BEFORE_KEY = "lethe_checks_before"
CHECKS_AFTER_KEY = "lethe_checks_after"
SUMMARY_KEY = "lethe_summary"


@contextmanager
def configuration_errors_fail_fast():
    """A wrong name or setting will not fix itself: fail the task now instead of retrying.

    Either way the reason is kept for the run report (XCom ``lethe_failure``): the message of a
    configuration error (names only), the exception's type for anything else, since a database
    error may quote row values.
    """
    try:
        yield
    except ConfigurationError as exc:
        _keep_failure(str(exc))
        raise AirflowFailException(str(exc)) from None
    except (AirflowFailException, AirflowSkipException):
        raise
    except Exception as exc:
        _keep_failure(f"{type(exc).__name__} (see the task log)")
        raise


def _keep_failure(reason: str) -> None:
    try:
        get_current_context()["ti"].xcom_push(key=FAILURE_KEY, value=reason)
    except Exception:  # the reason is a courtesy for the report; the task fails anyway
        log.debug("could not keep the failure reason", exc_info=True)


def _context_for(run: dict[str, Any]):
    from lethe.periods import to_utc_naive
    from lethe.runner import Engines, batch_size_from_env, make_context

    context = get_current_context()
    ti = context["ti"]
    return make_context(
        run_id=run["run_id"],
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        as_of=to_utc_naive(run["as_of"]),
        dry_run=run["dry_run"],
        key=audit_key(),
        engines=Engines(resolve=connection_url),
        folder_for=connection_path,
        batch_size=batch_size_from_env(),
        policy=policy_and_inventory()[0],
        inventory=policy_and_inventory()[1],
        create_audit=False,
    )  # resolve_run created it, once for the run


@task
def resolve_run(source_id: str) -> dict[str, Any]:
    """Fix the run's as-of, dry-run flag and rule selection once, for every later task."""
    from lethe.periods import resolve_as_of
    from lethe.subjects import is_demo_key

    context = get_current_context()
    params, dag_run = context["params"], context["dag_run"]
    as_of = resolve_as_of(
        params.get("as_of"),
        context.get("data_interval_end"),
        context.get("logical_date"),
        getattr(dag_run, "run_after", None),
    )
    known = rules_for(source_id)
    selected = list(params.get("rules") or known)
    unknown = sorted(set(selected) - set(known))
    if unknown:
        raise AirflowFailException(
            f"unknown rule id(s) {unknown} for this DAG (it enforces {known}); nothing was changed"
        )
    key = audit_key()
    state = _arm_state(source_id, key, dag_run.run_id, context["ti"])
    requested = bool(params.get("dry_run"))
    dry_run = requested or not state.armed
    run = {
        "run_id": dag_run.run_id,
        "as_of": as_of.isoformat(),
        "dry_run": dry_run,
        "dry_run_reason": "requested" if requested else ("not_armed" if dry_run else None),
        "source": source_id,
        "armed": state.armed,
        "armed_since": state.since,
        "first_armed_run": state.first_armed_run and not dry_run,
        "rules": selected,
        "demo_key": is_demo_key(key),
    }
    if not state.armed:
        log.warning(
            "DRY RUN: enforcement is not armed for source %s, so nothing will change. Arm it with "
            "`lethe arm %s` or by adding it to the Airflow Variable %s.",
            source_id,
            source_id,
            ARMED_VARIABLE,
        )
    log.info(
        "run %s: as-of %s UTC, %s, rules %s%s",
        run["run_id"],
        run["as_of"],
        "DRY RUN (nothing will change)" if run["dry_run"] else "enforcing",
        ", ".join(selected),
        " - audit key is the DEMO key" if run["demo_key"] else "",
    )
    if run["first_armed_run"]:
        log.info("first enforcing run since %s was armed (%s UTC): it clears the backlog", source_id, state.since)
    return run


def _arm_state(source_id: str, key: str, run_id: str, ti):
    """Whether enforcement is armed for the source; a switch changed in the UI is audited first."""
    from lethe.arming import parse_armed, reconcile
    from lethe.audit import AuditTrail
    from lethe.db import make_engine
    from lethe.runner import AUDIT_CONN_ID

    try:
        armed = source_id in parse_armed(Variable.get(ARMED_VARIABLE, default=None))
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None
    trail = AuditTrail(make_engine(connection_url(AUDIT_CONN_ID)), key)
    try:
        trail.create()
        return reconcile(trail, source_id, armed, run_id=run_id, dag_id=ti.dag_id, task_id=ti.task_id)
    finally:
        trail.engine.dispose()


def _selected(run: dict[str, Any], rule_id: str) -> None:
    if rule_id not in run["rules"]:
        raise AirflowSkipException(f"{rule_id} not selected in this run")


@task
def scan(run: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """Check the inventory's names against the live system and count; changes nothing."""
    from lethe.runner import scan_rule

    _selected(run, rule_id)
    with configuration_errors_fail_fast():
        return scan_rule(_context_for(run), rule_id)


@task
def validate(run: dict[str, Any], rule_id: str, scanned: dict[str, Any]) -> dict[str, Any]:
    """Check the data is fit to act on (Great Expectations, in the source): rows that are not are
    quarantined; when too many fail, the rule stops here and nothing changes."""
    from lethe.errors import QuarantineTooLarge
    from lethe.runner import validate_rule

    _selected(run, rule_id)
    with configuration_errors_fail_fast():
        try:
            return validate_rule(_context_for(run), rule_id)
        except QuarantineTooLarge as exc:
            get_current_context()["ti"].xcom_push(key=CHECKS_BEFORE_KEY, value=getattr(exc, "validation", None))
            raise


@task
def enforce(run: dict[str, Any], rule_id: str, scanned: dict[str, Any], validated: dict[str, Any]) -> dict[str, Any]:
    """Delete or anonymise in batches; each batch commits with its audit entries. Quarantined rows
    are left alone."""
    from lethe.runner import enforce_rule, with_validation

    with configuration_errors_fail_fast():
        return enforce_rule(_context_for(run), rule_id, with_validation(scanned, validated))


@task
def items(
    run: dict[str, Any], rule_id: str, scanned: dict[str, Any], validated: dict[str, Any]
) -> list[dict[str, Any]]:
    """The work list (trial databases, log files) the mapped enforce tasks take one each."""
    from lethe.runner import work_items

    with configuration_errors_fail_fast():
        found = work_items(_context_for(run), rule_id)
    log.info(
        "%s: %d item(s) to process%s", rule_id, len(found), " (dry run: none will change)" if run["dry_run"] else ""
    )
    return found


@task(map_index_template="{{ lethe_item }}")
def enforce_item(run: dict[str, Any], rule_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """One item; the UI names the mapped task instance after it."""
    from lethe.runner import enforce_item as enforce_one

    get_current_context()["lethe_item"] = item["name"]
    with configuration_errors_fail_fast():
        return enforce_one(_context_for(run), rule_id, item)


@task
def summarise(
    run: dict[str, Any], rule_id: str, scanned: dict[str, Any], enforced, mapped: bool, validated: dict[str, Any]
) -> dict[str, Any]:
    """Check nothing eligible remains (Great Expectations): it fails when the policy is still
    broken after a real run; a dry run reports what it left."""
    from lethe.runner import check_after, combine_items, summarise_rule, with_validation

    _selected(run, rule_id)
    if scanned is None or validated is None:
        raise AirflowFailException(f"{rule_id}: the scan or the checks before it did not finish; nothing to summarise")
    ti = get_current_context()["ti"]
    with configuration_errors_fail_fast():
        ctx = _context_for(run)
        if mapped:
            # Index by length: iterating the lazy XCom sequence reads one past its end, which
            # Airflow logs as an error.
            results = [enforced[i] for i in range(len(enforced))] if enforced is not None else []
            enforced = combine_items(ctx, rule_id, with_validation(scanned, validated), results)
        checked = check_after(ctx, rule_id, enforced)
        ti.xcom_push(key=CHECKS_AFTER_KEY, value=checked)
        summary = summarise_rule(ctx, rule_id, with_validation(enforced, validated), checked)
    if not checked["success"] and not run["dry_run"]:
        ti.xcom_push(key=SUMMARY_KEY, value=summary)
        reason = (
            f"{rule_id}: the policy is still broken after the run: {checked['remaining']} eligible "
            f"record(s) remain (check {checked['suite']})"
        )
        _keep_failure(reason)
        raise AirflowFailException(reason)
    return summary


def record_outcomes(dag_id: str, task_id: str, run: dict[str, Any], rules: list[dict[str, Any]]) -> None:
    """Close each rule of the run in the audit trail (:mod:`lethe.evidence.outcomes`)."""
    from lethe.audit import AuditTrail
    from lethe.db import make_engine
    from lethe.evidence.outcomes import record_outcomes as record
    from lethe.runner import AUDIT_CONN_ID

    trail = AuditTrail(make_engine(connection_url(AUDIT_CONN_ID)), audit_key())
    try:
        record(trail, dag_id=dag_id, task_id=task_id, run=run, rules=rules)
    finally:
        trail.engine.dispose()


def rule_tasks(rule_id: str, *, mapped: bool = False, pool: str | None = None):
    """scan -> validate -> enforce -> summarise for one rule, as a task group named after the rule.

    ``validate`` runs the checks before the rule (Great Expectations) and quarantines what cannot
    be judged; ``summarise`` runs the check after it.

    ``mapped``: the work list is data (trial databases, log files): ``items`` lists it after the
    scan, and one ``enforce`` task instance is mapped over each item, named after it in the UI.
    ``pool`` bounds how many of those run at once. A mapped rule is summarised even when some
    items failed, so the report can say which.
    """

    @task_group(group_id=rule_id, tooltip=f"Retention rule {rule_id}")
    def group(run: dict[str, Any]):
        scanned = scan(run, rule_id)
        validated = validate(run, rule_id, scanned)
        if mapped:
            work = items(run, rule_id, scanned, validated)
            enforced = (
                enforce_item.override(task_id="enforce", **({"pool": pool} if pool else {}))
                .partial(run=run, rule_id=rule_id)
                .expand(item=work)
            )
        else:
            enforced = enforce(run, rule_id, scanned, validated)
        return summarise.override(trigger_rule="all_done" if mapped else "all_success")(
            run, rule_id, scanned, enforced, mapped, validated
        )

    return group


@task(trigger_rule="all_done", retries=0)
def report(run: dict[str, Any], rule_ids: list[str]) -> str:
    """Write the run's report (JSON and HTML) and refresh reports/latest; fail if a rule failed.

    A failed rule fails this task at once: a retry of the report cannot mend the rule.
    """
    from lethe.report import write_run_report

    if run is None:
        raise AirflowFailException("the run could not be resolved (see resolve_run): no report, nothing changed")
    context = get_current_context()
    ti = context["ti"]
    results, reasons, checks = {}, {}, {}
    for rule_id in rule_ids:
        results[rule_id] = ti.xcom_pull(task_ids=f"{rule_id}.summarise") or ti.xcom_pull(
            task_ids=f"{rule_id}.summarise", key=SUMMARY_KEY
        )
        checks[rule_id] = {
            "before": ti.xcom_pull(task_ids=f"{rule_id}.validate")
            or ti.xcom_pull(task_ids=f"{rule_id}.validate", key=CHECKS_BEFORE_KEY),
            "after": ti.xcom_pull(task_ids=f"{rule_id}.summarise", key=CHECKS_AFTER_KEY),
        }
        if results[rule_id] is None or results[rule_id].get("after") == "failed":
            found = ti.xcom_pull(
                task_ids=[f"{rule_id}.{step}" for step in ("scan", "validate", "items", "enforce", "summarise")],
                key=FAILURE_KEY,
            )
            reasons[rule_id] = next((r for r in (found or []) if r), None)
    with configuration_errors_fail_fast():
        path, failed = write_run_report(dag_id=ti.dag_id, run=run, results=results, reasons=reasons, checks=checks)
        record_outcomes(ti.dag_id, ti.task_id, run, json.loads(path.read_text())["rules"])
    log.info("report written: %s", path)
    for rule_id in failed:
        log.error("%s failed: %s", rule_id, reasons.get(rule_id) or "see its task logs")
    if failed:
        from lethe.alerts import Alert

        send_alert(
            Alert(
                "rule_failed",
                f"rule(s) {', '.join(failed)} of {ti.dag_id} failed (as-of {run['as_of']})",
                [f"{rule_id}: {reasons.get(rule_id) or 'see its task logs'}" for rule_id in failed]
                + [f"Run report: {path}"],
                dag_id=ti.dag_id,
                run_id=run["run_id"],
            )
        )
        raise AirflowFailException(f"rule(s) {', '.join(failed)} failed: see {path} and their task logs")
    return str(path)

"""Enforcement is armed per source, by a person; until then every run of its DAG is a dry run.

The switch is the Airflow Variable ``lethe_armed_sources``: a JSON list of source ids (``["crm",
"marketing"]``; a comma-separated list is read too), set in the UI (Admin, Variables) or by
``lethe arm SOURCE`` / ``lethe disarm SOURCE``. The embedded demo arms itself (``make demo``).

Every change of the switch is in the audit trail: ``lethe arm`` writes an ``armed`` or
``disarmed`` entry naming who and when; a change made in the UI is noticed by the next run of the
source's DAG, which writes the entry (by: the Airflow Variable) before it decides anything.

Public verbs: :func:`parse_armed`, :func:`record_switch`, :func:`reconcile`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the DAG files import this module at parse time: the audit trail only inside calls
    from lethe.audit import AuditEntry, AuditTrail

ARMED_VARIABLE = "lethe_armed_sources"
ARMED, DISARMED = "armed", "disarmed"
BY_VARIABLE = f"the Airflow Variable {ARMED_VARIABLE} (changed outside `lethe arm`)"


@dataclass(frozen=True)
class ArmState:
    armed: bool
    since: str | None  # when the current arming was recorded (ISO, UTC)
    first_armed_run: bool  # armed, and no enforcing run of the source since


def parse_armed(value: str | list | None) -> set[str]:
    """The source ids a Variable value names: a JSON list, or comma-separated ids; empty: none."""
    if value is None:
        return set()
    if isinstance(value, list):
        return {str(v).strip() for v in value if str(v).strip()}
    text = str(value).strip()
    if not text:
        return set()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"the Variable {ARMED_VARIABLE} is not a JSON list of source ids: {text!r}") from None
        return parse_armed(items)
    return {part.strip() for part in text.split(",") if part.strip()}


def record_switch(
    trail: "AuditTrail",
    source: str,
    armed: bool,
    *,
    by: str,
    how: str,
    run_id: str = "lethe-arm",
    dag_id: str = "",
    task_id: str = "",
) -> "AuditEntry":
    """Chain an ``armed``/``disarmed`` entry for ``source``: who, how, and (recorded_at) when."""
    from lethe.audit import AuditEntry

    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    entry = AuditEntry(
        run_id=run_id,
        dag_id=dag_id,
        task_id=task_id,
        rule_id="-",
        source=source,
        action=ARMED if armed else DISARMED,
        subject_key="-",
        record_count=0,
        as_of=now,
        details={"by": by, "how": how},
    )
    trail.append([entry])
    return entry


def _last_switch(trail: "AuditTrail", source: str) -> dict | None:
    from sqlalchemy import select

    from lethe.audit import audit_table

    with trail.engine.connect() as conn:
        row = (
            conn.execute(
                select(audit_table.c.seq, audit_table.c.action, audit_table.c.recorded_at)
                .where(
                    audit_table.c.rule_id == "-",
                    audit_table.c.source == source,
                    audit_table.c.action.in_([ARMED, DISARMED]),
                )
                .order_by(audit_table.c.seq.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def reconcile(trail: "AuditTrail", source: str, armed_now: bool, *, run_id: str, dag_id: str, task_id: str) -> ArmState:
    """The switch as the run finds it; a change the trail does not know yet is recorded first."""
    from sqlalchemy import func, select

    from lethe.audit import audit_table

    last = _last_switch(trail, source)
    recorded = last is not None and last["action"] == ARMED
    if armed_now != recorded:
        record_switch(
            trail,
            source,
            armed_now,
            by=BY_VARIABLE,
            how="Airflow Variable",
            run_id=run_id,
            dag_id=dag_id,
            task_id=task_id,
        )
        last = _last_switch(trail, source)
    if not armed_now:
        return ArmState(False, None, False)
    with trail.engine.connect() as conn:
        enforced_since = conn.execute(
            select(func.count())
            .select_from(audit_table)
            .where(
                audit_table.c.seq > last["seq"],
                audit_table.c.source == source,
                audit_table.c.action == "rule_summary",
                audit_table.c.dry_run.is_(False),
            )
        ).scalar_one()
    return ArmState(True, last["recorded_at"].isoformat(), enforced_since == 0)

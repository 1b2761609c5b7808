"""The arming switch: read from the Variable's value, every change recorded once, first run told."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from lethe.arming import BY_VARIABLE, parse_armed, reconcile, record_switch
from lethe.audit import AuditEntry, AuditTrail, audit_table
from lethe.db import make_engine

from conftest import TEST_KEY


@pytest.mark.parametrize(
    ("value", "armed"),
    [
        (None, set()),
        ("", set()),
        ("[]", set()),
        ('["crm", "marketing"]', {"crm", "marketing"}),
        ("crm, trials", {"crm", "trials"}),
        (["weblogs"], {"weblogs"}),
    ],
)
def test_the_variable_names_the_armed_sources(value, armed):
    assert parse_armed(value) == armed


def test_a_broken_variable_is_an_error_not_unarmed():
    with pytest.raises(ValueError, match="lethe_armed_sources is not a JSON list"):
        parse_armed('["crm"')


def test_every_change_is_recorded_once_and_the_first_enforcing_run_is_told(tmp_path):
    trail = AuditTrail(make_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}"), TEST_KEY)
    trail.create()

    def state(armed: bool):
        return reconcile(trail, "crm", armed, run_id="r", dag_id="lethe_crm_retention", task_id="resolve_run")

    def switches():
        with trail.engine.connect() as conn:
            return conn.execute(
                select(audit_table.c.source, audit_table.c.action, audit_table.c.details)
                .where(audit_table.c.action.in_(["armed", "disarmed"]))
                .order_by(audit_table.c.seq)
            ).all()

    assert state(False).armed is False and switches() == []  # never armed: nothing to record
    record_switch(trail, "crm", True, by="Dana", how="lethe arm")
    first = state(True)
    assert first.armed and first.first_armed_run and len(switches()) == 1  # known: not recorded again
    trail.append(
        [
            AuditEntry(
                run_id="r",
                dag_id="d",
                task_id="t",
                rule_id="C1",
                source="crm",
                action="rule_summary",
                subject_key="-",
                record_count=3,
                as_of=datetime(2026, 11, 26),
            )
        ]
    )
    assert state(True).first_armed_run is False

    # Disarmed in the UI: the run notices and records it; armed again the same way.
    assert state(False).armed is False
    assert state(True).first_armed_run is True
    assert [(s.action, s.details) for s in switches()] == [
        ("armed", '{"by": "Dana", "how": "lethe arm"}'),
        ("disarmed", f'{{"by": "{BY_VARIABLE}", "how": "Airflow Variable"}}'),
        ("armed", f'{{"by": "{BY_VARIABLE}", "how": "Airflow Variable"}}'),
    ]
    assert trail.verify().ok

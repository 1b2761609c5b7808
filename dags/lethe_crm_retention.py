"""
### Lethe - CRM retention (rules C1, K1)

Enforces the privacy policy on the CRM (connection `crm`) every night at 02:00 UTC, by the rules
in the table above.

A legal hold or a restriction in force on the person's e-mail exempts them; active customers'
contacts are kept. Each rule runs *scan → enforce → summarise*; every change is written to the
hash-chained audit trail (connection `lethe_audit`) in the same commit as the change, and the run
report lands in `reports/lethe_crm_retention/<run_id>/`.

**Dry run until armed.** Until enforcement is armed for the source `crm` (by a person: `lethe arm
crm`, or adding `crm` to the Airflow Variable `lethe_armed_sources`, a JSON list), every run of
this DAG, scheduled or manual, is a dry run: it says so in its log and report, records `would_...`
entries and changes nothing. Arming and disarming are recorded in the audit trail (who, when).

Params: `dry_run` (change nothing, report what would change), `as_of` (decide as of this date
instead of the run's data interval end), `rules` (a subset of rule ids).
"""

from __future__ import annotations

from airflow.sdk import dag

from lethe.airflow_adapter import SCHEDULE, nightly_dag_settings, retention_tasks

SOURCE = "crm"


@dag(schedule=SCHEDULE, **nightly_dag_settings(SOURCE, __doc__))
def lethe_crm_retention():
    retention_tasks(SOURCE)


lethe_crm_retention()

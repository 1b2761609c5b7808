"""
### Lethe - marketing retention (rules N1, W1, W2)

Enforces the privacy policy on the marketing database (connection `marketing`), every night at
02:00 UTC, by the rules in the table above.

Legal holds and restrictions (read from the CRM) exempt a subject. Each rule runs
*scan → enforce → summarise*; every change is audited in the same commit as the change; the run
report lands in `reports/lethe_marketing_retention/<run_id>/`.

**Dry run until armed.** Until enforcement is armed for the source `marketing` (by a person: `lethe arm
marketing`, or adding `marketing` to the Airflow Variable `lethe_armed_sources`, a JSON list), every run of
this DAG, scheduled or manual, is a dry run: it says so in its log and report, records `would_...`
entries and changes nothing. Arming and disarming are recorded in the audit trail (who, when).

Params: `dry_run`, `as_of`, `rules` (see the CRM DAG).
"""

from __future__ import annotations

from airflow.sdk import dag

from lethe.airflow_adapter import SCHEDULE, nightly_dag_settings, retention_tasks

SOURCE = "marketing"


@dag(schedule=SCHEDULE, **nightly_dag_settings(SOURCE, __doc__))
def lethe_marketing_retention():
    retention_tasks(SOURCE)


lethe_marketing_retention()

"""
### Lethe - free-trial databases (rule T1)

Enforces the privacy policy on the free-trial databases (connection `trials`: a PostgreSQL or
MariaDB server, or on SQLite a folder with one `<name>.sqlite` file per trial), every night at
02:00 UTC, by the rules in the table above.

Only a database whose name matches the inventory's `name_pattern` and whose sign-up rows are all
eligible (no subscription, the rule's period past the trial end at the as-of, no legal hold or
restriction on the sign-up contact) is dropped. Orphans (trial-like names without a sign-up row), other
databases and system databases are never touched; orphans and refused names are reported.

Tasks: *scan* counts, *items* lists the databases to drop, one mapped *enforce* task drops each
(named after the database in the UI; the pool `lethe_trial_drops` bounds concurrent drops), and
*summarise* checks none is left. Each drop is bracketed by a `drop_intent` and a
`database_dropped` entry in the hash-chained audit trail; a drop interrupted between the two is
recorded by the next run. The report lands in `reports/lethe_trials_retention/<run_id>/`.

**Dry run until armed.** Until enforcement is armed for the source `trials` (by a person: `lethe arm
trials`, or adding `trials` to the Airflow Variable `lethe_armed_sources`, a JSON list), every run of
this DAG, scheduled or manual, is a dry run: it says so in its log and report, records `would_...`
entries and changes nothing. Arming and disarming are recorded in the audit trail (who, when).

Params: `dry_run` (change nothing; the mapped tasks list what would be dropped), `as_of`,
`rules` (see the CRM DAG).
"""

from __future__ import annotations

from airflow.sdk import dag

from lethe.airflow_adapter import SCHEDULE, nightly_dag_settings, retention_tasks

SOURCE = "trials"


@dag(schedule=SCHEDULE, **nightly_dag_settings(SOURCE, __doc__))
def lethe_trials_retention():
    retention_tasks(SOURCE)


lethe_trials_retention()

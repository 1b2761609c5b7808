"""
### Lethe - connection log retention (rules L1, L2)

Enforces the privacy policy on the web server access logs in the folder of connection `weblogs`
(one file a day, `access.log-YYYYMMDD`, older ones `.gz`) every night at 02:00 UTC, by the rules in
the table above. L1 truncates client IP addresses as anonip does (the masks are in the
inventory) and rewrites the file atomically (temporary file in the same folder, fsync, rename; mode
and compression kept); a file L2 deletes in the same run is left to L2.

Each rule runs *scan → items → enforce (one mapped task per file, named after it) → summarise*.
Each file's outcome (name, lines, addresses truncated, unparseable lines kept unchanged, SHA-256
before and after) is written to the hash-chained audit trail (connection `lethe_audit`) in two
steps around the rename, so a file is never processed twice and a file changed since it was
anonymised is noticed and anonymised again. Names that do not match the inventory's pattern are
never touched. The run report lands in `reports/lethe_weblogs_retention/<run_id>/`.

**Dry run until armed.** Until enforcement is armed for the source `weblogs` (by a person: `lethe arm
weblogs`, or adding `weblogs` to the Airflow Variable `lethe_armed_sources`, a JSON list), every run of
this DAG, scheduled or manual, is a dry run: it says so in its log and report, records `would_...`
entries and changes nothing. Arming and disarming are recorded in the audit trail (who, when).

Params: `dry_run` (change nothing, report what would change), `as_of` (decide as of this date
instead of the run's data interval end), `rules` (a subset of rule ids).
"""

from __future__ import annotations

from airflow.sdk import dag

from lethe.airflow_adapter import SCHEDULE, nightly_dag_settings, retention_tasks

SOURCE = "weblogs"


@dag(schedule=SCHEDULE, **nightly_dag_settings(SOURCE, __doc__))
def lethe_weblogs_retention():
    retention_tasks(SOURCE)


lethe_weblogs_retention()

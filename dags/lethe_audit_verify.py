"""
### Lethe - weekly audit verification

Every Sunday at 05:00 UTC, two checks of the evidence:

- **the chain**: every entry of the audit trail (connection `lethe_audit`) is recomputed, its
  HMAC and its link to the entry before it; a broken chain fails the run and names the first bad
  entry (changed, missing, reordered, or entries removed after it);
- **the reports against the trail, both ways**: every count in every run report
  (`reports/<dag_id>/<run_id>/report.json`) must equal its rule's summary entry, its status and
  remaining count its outcome entry, and the per-record entries must add up to the records acted
  on; every rule run in the trail must be in a run report.

A failure is told to the notifier (a log line, and an e-mail through Airflow's SMTP connection
when one is configured). `lethe audit verify` runs the first check by hand.
"""

from __future__ import annotations

from airflow.sdk import dag

from lethe.airflow_evidence import VERIFY_SCHEDULE, crosscheck_reports, evidence_dag_settings, verify_chain


@dag(
    schedule=VERIFY_SCHEDULE,
    description="Weekly: recompute the audit chain and check the run reports against it",
    tags=["lethe", "compliance", "audit"],
    **evidence_dag_settings(__doc__, retries=0),
)
def lethe_audit_verify():
    verify_chain.override(task_id="verify_chain")()
    crosscheck_reports.override(task_id="crosscheck_reports")()


lethe_audit_verify()

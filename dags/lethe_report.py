"""
### Lethe - consolidated compliance report

One report per day across every source, for the data protection officer and the auditor: for
each rule of the policy, whether the company kept its promise that night and since when.

**When.** As soon as every nightly retention DAG has succeeded (each updates its Asset
`lethe_retention_<source>` when its run succeeded), and every day at 07:00 UTC whatever happened,
so a missed or failed night still gets its report, showing the breach.

**What.** Built from the hash-chained audit trail (connection `lethe_audit`), never from the run
report files, which can be lost:

- at the top, in plain words, the breaches: records past their deadline after a run, a rule that
  did not run or failed, an audit chain that does not verify; then the rules whose period is a
  configured default, as decisions for the data protection officer;
- per rule: policy section, legal basis, period, eligible, deleted, anonymised, dropped, exempt,
  quarantined, overdue before and after, the checks' verdicts and the run it came from;
- 90 days of trends per rule (removals and the overdue backlog, as inline charts) and a forecast
  of the next 7 and 30 days, counted by the rules' own scans at later as-ofs, read-only;
- the audit chain's head (sequence and hash), so a printed report pins the trail as it was;
- beside it, the register of retention (GDPR art. 30(1)(f)) from the policy and the inventory.

Written to `reports/daily/<day>/` and `reports/latest/` as self-contained HTML, JSON and CSV. A
breach is told to the notifier (a log line, and an e-mail through Airflow's SMTP connection when
one is configured). `lethe report --date D` rebuilds a day from the audit trail alone.
"""

from __future__ import annotations

from airflow.sdk import dag

from lethe.airflow_evidence import (
    alert_on_breaches,
    chain_head,
    evidence_dag_settings,
    forecast_rules,
    report_day,
    report_params,
    report_schedule,
    write_report,
)


@dag(
    schedule=report_schedule(),
    params=report_params(),
    description="Consolidated compliance report: every rule, last night and since when",
    tags=["lethe", "compliance", "report"],
    **evidence_dag_settings(__doc__),
)
def lethe_report():
    day = report_day()
    chain = chain_head()
    predicted = forecast_rules(day)
    summary = write_report(day, chain, predicted)
    alert_on_breaches(summary)


lethe_report()

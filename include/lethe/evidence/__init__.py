"""Compliance evidence: the consolidated daily report, its trends and forecast, the register of
retention (GDPR art. 30(1)(f)) and the audit verification, built from the audit trail.

Modules, one job each:

- :mod:`lethe.evidence.outcomes` - the ``rule_outcome`` audit entry each run closes a rule with
  (status, overdue after, the checks' verdicts), so the trail alone tells how a night ended.
- :mod:`lethe.evidence.history` - the trail read as rule runs and days (set-based, streamed).
- :mod:`lethe.evidence.daily` - the consolidated report of one day: breaches, decisions for the
  data protection officer, per-rule counts, "kept since", trends over 90 days, the forecast.
- :mod:`lethe.evidence.forecast` - what each rule will act on in the next 7 and 30 days, from the
  sources' own scans at a later as-of (read-only).
- :mod:`lethe.evidence.register` - the register of retention from the policy and the inventory,
  with the gaps (tables holding personal data that no rule covers).
- :mod:`lethe.evidence.charts` - inline SVG charts (no script, no network).
- :mod:`lethe.evidence.render` - HTML (self-contained, printable), JSON and CSV files.
- :mod:`lethe.evidence.crosscheck` - run reports against the trail, both ways.

The consolidated report is a plain dict (written as ``consolidated.json``)::

    {
      "kind": "lethe_consolidated_report", "version": 1,
      "date": "2026-11-26",                 # the UTC day reported: runs whose as-of falls on it
      "generated_at": "2026-11-26T07:00:03Z",
      "built_from": "audit trail" | "audit trail and sources",
      "policy": {"name": str, "document": str},
      "verdict": {"ok": bool, "headline": str},          # one sentence, plain words
      "breaches": [{"rule": str | None, "kind": str, "text": str}],
          # kind: overdue_after | did_not_run | dry_run_only | failed | no_outcome | chain_broken
      "decisions": [{"rule": str, "period": str, "text": str}],   # configured default periods
      "chain": {"ok": bool, "entries": int, "head_seq": int, "head_hash": str,
                "first_bad_seq": int | None, "problem": str},
      "trend_window": {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD", "days": 90},
      "forecast": {"computed": bool, "as_of": str | None, "note": str},
      "rules": [{
          "rule": "C1", "description": str, "policy_section": str, "legal_basis": str,
          "data_category": str, "source": str, "action": str,
          "unit": "records" | "databases" | "files",
          "period": "3 years", "period_source": "policy" | "default", "trigger": str,
          "status": "kept" | "breach" | "failed" | "did_not_run" | "dry_run_only",
          "status_text": str,                  # plain words, e.g. "kept: nothing past its deadline remains"
          "kept_since": "YYYY-MM-DD" | None,   # first day of the unbroken run of kept days
          "kept_since_text": str,              # e.g. "2026-11-20 (7 nights in a row)"
          "counts": {"eligible": int, "deleted": int, "anonymised": int, "dropped": int,
                     "exempt_hold": int, "exempt_restriction": int, "quarantined": int,
                     "overdue_before": int, "overdue_after": int | None},
          "checks": {"before": str | None, "after": str | None},   # passed/quarantined/stopped, passed/failed
          "runs": int,                         # real runs of the rule that day
          "run": {"dag_id": str, "run_id": str, "as_of": str, "first_seq": int, "last_seq": int} | None,
          "forecast": {"7": int, "30": int} | None,
          "trend": [{"date": "YYYY-MM-DD", "ran": bool, "status": str, "removed": int,
                     "overdue_before": int, "overdue_after": int | None}],   # oldest first, 90 days;
                     # status as above, or "not_started" before the rule's first run ever
      }],
    }

No personal data anywhere: counts, rule ids, policy text, table and run names, hashes of the chain.
"""

"""Run reports: ``reports/<dag_id>/<run_id>/report.{json,html}`` and ``reports/latest``.

A report holds counts, rule ids, policy sections and table names only: no personal data.
``reports/latest`` gathers the newest run of every nightly DAG, one entry per rule.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from lethe.config import load_policy

COUNT_FIELDS = ("eligible", "deleted", "anonymised", "exempt_hold", "exempt_restriction",
                "overdue_before", "remaining_after")


def reports_dir() -> Path:
    return Path(os.environ.get("LETHE_REPORTS_DIR") or Path.cwd() / "reports")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+:-]", "_", name)


def rule_entry(rule_id: str, result: dict[str, Any] | None, policy, reason: str | None = None) -> dict[str, Any]:
    rule = policy.rule(rule_id)
    entry = {
        "rule": rule_id, "description": rule.description, "policy_section": rule.policy_section,
        "period": str(rule.period), "overdue_after": str(rule.overdue_period),
        "period_is_default": rule.is_default, "action": rule.action,
    }
    if result is None:
        entry.update({"status": "failed", "error": reason or "the rule's tasks did not finish (see the task logs)"})
        entry.update({name: None for name in COUNT_FIELDS})
        return entry
    entry.update({name: result.get(name) for name in COUNT_FIELDS})
    entry.update({"status": result.get("status", "ok"), "error": result.get("error", ""),
                  "source": result.get("source"), "related": result.get("related", {}),
                  "extra": result.get("extra", {}), "batches": result.get("batches", 0)})
    return entry


def write_run_report(*, dag_id: str, run: dict[str, Any], results: dict[str, dict | None],
                     root: Path | None = None, reasons: dict[str, str | None] | None = None
                     ) -> tuple[Path, list[str]]:
    """Write one run's report and refresh ``latest``; returns its path and the failed rules.

    ``reasons``: why a rule whose result is missing failed (a configuration error's message).
    """
    policy = load_policy()
    root = root or reports_dir()
    reasons = reasons or {}
    selected = run.get("rules") or list(results)
    rules = [rule_entry(rule_id, results.get(rule_id), policy, reasons.get(rule_id))
             for rule_id in results if rule_id in selected]
    failed = [r["rule"] for r in rules if r["status"] == "failed"]
    report = {
        "dag_id": dag_id, "run_id": run["run_id"], "as_of": run["as_of"], "dry_run": run["dry_run"],
        "demo_key": run.get("demo_key", False),
        "generated_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "policy": policy.policy.name, "rules": rules,
    }
    folder = root / _safe(dag_id) / _safe(run["run_id"])
    _write(folder, report)
    refresh_latest(root)
    return folder / "report.json", failed


def _write(folder: Path, report: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    tmp.replace(folder / "report.json")
    (folder / "report.html").write_text(render_html(report))


def refresh_latest(root: Path | None = None) -> dict[str, Any]:
    """Gather the newest run of every DAG (by as-of, then by when it was written)."""
    root = root or reports_dir()
    newest: dict[str, dict[str, Any]] = {}
    for path in root.glob("*/*/report.json"):
        if path.parent.parent.name == "latest":
            continue
        data = json.loads(path.read_text())
        order = (data["as_of"], data["generated_at"])
        if data["dag_id"] not in newest or order > newest[data["dag_id"]]["_order"]:
            newest[data["dag_id"]] = {**data, "_order": order}
    runs = []
    for dag_id in sorted(newest):
        data = newest[dag_id]
        data.pop("_order")
        runs.append(data)
    latest = {
        "generated_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "demo_key": any(r.get("demo_key") for r in runs),
        "dry_run": any(r["dry_run"] for r in runs),
        "as_of": max((r["as_of"] for r in runs), default=None),
        "runs": [{k: r[k] for k in ("dag_id", "run_id", "as_of", "dry_run")} for r in runs],
        "rules": [{**rule, "dag_id": r["dag_id"], "as_of": r["as_of"], "dry_run": r["dry_run"]}
                  for r in runs for rule in r["rules"]],
    }
    _write(root / "latest", latest)
    return latest


def newest_run_report(dag_id: str, since: str | None = None, root: Path | None = None) -> dict[str, Any] | None:
    """The newest report written for ``dag_id`` (at or after ``since``, ISO UTC), or None."""
    root = root or reports_dir()
    found = None
    for path in (root / _safe(dag_id)).glob("*/report.json"):
        data = json.loads(path.read_text())
        if since and data["generated_at"] < since:
            continue
        if found is None or data["generated_at"] > found["generated_at"]:
            found = data
    return found


def render_html(report: dict[str, Any]) -> str:
    env = Environment(loader=PackageLoader("lethe", "templates"), autoescape=select_autoescape())
    return env.get_template("report.html.j2").render(report=report, fields=COUNT_FIELDS)


def summary_text(root: Path | None = None) -> str:
    """A one-screen summary of reports/latest for the terminal."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    root = root or reports_dir()
    path = root / "latest" / "report.json"
    if not path.exists():
        return f"no report yet under {root}"
    latest = json.loads(path.read_text())
    table = Table(title=f"Lethe retention - as-of {latest['as_of']} UTC"
                        + (" - DRY RUN" if latest["dry_run"] else ""))
    for header in ("rule", "§", "period", "eligible", "deleted", "anonymised", "held", "restricted",
                   "overdue", "remaining", "status"):
        table.add_column(header, justify="right" if header not in ("rule", "§", "period", "status") else "left")
    for r in latest["rules"]:
        def num(name):
            value = r.get(name)
            return "-" if value is None else str(value)
        table.add_row(r["rule"], r["policy_section"], r["period"] + (" (default)" if r["period_is_default"] else ""),
                      num("eligible"), num("deleted"), num("anonymised"), num("exempt_hold"),
                      num("exempt_restriction"), num("overdue_before"), num("remaining_after"), r["status"])
    out = StringIO()
    console = Console(file=out, width=140, force_terminal=False)
    console.print(table)
    if latest["demo_key"]:
        console.print("NOTE: the audit key is the DEMO key written by `make seed`; do not use it for real data.")
    console.print(f"Report: {root / 'latest' / 'report.html'} (JSON: {path})")
    return out.getvalue()
